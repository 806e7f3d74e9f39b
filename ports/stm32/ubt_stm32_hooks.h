// Forced into every C file of an stm32 build with our module (micropython_glue/micropython.mk,
// UBT_PORT=stm32): the soft-reset hook, ahead of boardctrl.h's default.
struct _boardctrl_state_t;
void ubt_stm32_start_soft_reset(struct _boardctrl_state_t *state);
#define MICROPY_BOARD_START_SOFT_RESET ubt_stm32_start_soft_reset
