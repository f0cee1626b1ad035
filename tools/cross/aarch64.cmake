# aarch64.cmake - CMake toolchain file: aarch64 Linux, Debian's
# gcc-aarch64-linux-gnu + libc6-dev-arm64-cross; programs run under
# qemu-aarch64 (CMAKE_CROSSCOMPILING_EMULATOR). tools/cross-test uses it:
#   cmake -DCMAKE_TOOLCHAIN_FILE=tools/cross/aarch64.cmake ...
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(ZIO_CROSS_TRIPLE aarch64-linux-gnu)
set(ZIO_CROSS_QEMU qemu-aarch64)
include(${CMAKE_CURRENT_LIST_DIR}/gnu-linux.cmake)
