# riscv64.cmake - CMake toolchain file: riscv64 Linux (rv64gc, LP64D),
# Debian's gcc-riscv64-linux-gnu + libc6-dev-riscv64-cross; programs run
# under qemu-riscv64 (CMAKE_CROSSCOMPILING_EMULATOR). tools/cross-test uses it:
#   cmake -DCMAKE_TOOLCHAIN_FILE=tools/cross/riscv64.cmake ...
set(CMAKE_SYSTEM_PROCESSOR riscv64)
set(ZIO_CROSS_TRIPLE riscv64-linux-gnu)
set(ZIO_CROSS_QEMU qemu-riscv64)
include(${CMAKE_CURRENT_LIST_DIR}/gnu-linux.cmake)
# GCC 12 emits no unwind tables on riscv by default (it does on x86_64 and
# aarch64), so backtraces from zio code would stop at the first frame.
set(CMAKE_C_FLAGS_INIT "-fasynchronous-unwind-tables")
