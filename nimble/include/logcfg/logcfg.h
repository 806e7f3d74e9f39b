/* ubluetooth compiles NimBLE's logging out: every log macro discards its arguments. */
#ifndef UBT_NIMBLE_LOGCFG_H
#define UBT_NIMBLE_LOGCFG_H

#include "log_common/ignore.h"

#define BLE_HS_LOG_DEBUG(...) IGNORE(__VA_ARGS__)
#define BLE_HS_LOG_INFO(...) IGNORE(__VA_ARGS__)
#define BLE_HS_LOG_WARN(...) IGNORE(__VA_ARGS__)
#define BLE_HS_LOG_ERROR(...) IGNORE(__VA_ARGS__)
#define BLE_HS_LOG_CRITICAL(...) IGNORE(__VA_ARGS__)
#define BLE_HS_LOG_DISABLED(...) IGNORE(__VA_ARGS__)
#define DFLT_LOG_DEBUG(...) IGNORE(__VA_ARGS__)
#define DFLT_LOG_INFO(...) IGNORE(__VA_ARGS__)
#define DFLT_LOG_WARN(...) IGNORE(__VA_ARGS__)
#define DFLT_LOG_ERROR(...) IGNORE(__VA_ARGS__)
#define DFLT_LOG_CRITICAL(...) IGNORE(__VA_ARGS__)
#define DFLT_LOG_DISABLED(...) IGNORE(__VA_ARGS__)

#endif
