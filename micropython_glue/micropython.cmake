# MicroPython user C module (CMake ports): the `bluetooth` module in Rust on NimBLE.
# Builds the Rust staticlib with cargo and links it into the firmware.

set(UBT_DIR ${CMAKE_CURRENT_LIST_DIR}/..)
if(NOT DEFINED UBT_RUST_TARGET)
    set(UBT_RUST_TARGET thumbv7em-none-eabihf)
endif()
set(UBT_LIB ${UBT_DIR}/target/${UBT_RUST_TARGET}/release/libubluetooth.a)

add_custom_command(
    OUTPUT ${UBT_LIB} ${CMAKE_CURRENT_LIST_DIR}/ubluetooth.h
    COMMAND cargo build --release --no-default-features --target ${UBT_RUST_TARGET}
    WORKING_DIRECTORY ${UBT_DIR}
    COMMENT "Building the ubluetooth Rust staticlib"
    VERBATIM
)
add_custom_target(ubluetooth_rust DEPENDS ${UBT_LIB})

add_library(usermod_ubluetooth INTERFACE)
add_dependencies(usermod_ubluetooth ubluetooth_rust)
file(GLOB UBT_GLUE_SOURCES ${CMAKE_CURRENT_LIST_DIR}/*.c)
target_sources(usermod_ubluetooth INTERFACE ${UBT_GLUE_SOURCES})
target_include_directories(usermod_ubluetooth INTERFACE ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(usermod_ubluetooth INTERFACE ${UBT_LIB})
target_link_libraries(usermod INTERFACE usermod_ubluetooth)
