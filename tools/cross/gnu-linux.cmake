# gnu-linux.cmake - shared part of the Debian-cross-gcc toolchain files
# (aarch64.cmake, riscv64.cmake); not a toolchain file itself.
#
# The includer sets CMAKE_SYSTEM_PROCESSOR, ZIO_CROSS_TRIPLE (the gcc prefix,
# e.g. aarch64-linux-gnu) and ZIO_CROSS_QEMU (the qemu-user binary). Debian's
# cross packages put the target's libc in /usr/<triple>, which the cross gcc
# already searches, so no --sysroot is needed; qemu gets the same directory
# with -L to find the dynamic loader and libraries.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${ZIO_CROSS_TRIPLE}-gcc)
set(CMAKE_ASM_COMPILER ${ZIO_CROSS_TRIPLE}-gcc)
set(ZIO_CROSS_ROOT /usr/${ZIO_CROSS_TRIPLE})

set(CMAKE_FIND_ROOT_PATH ${ZIO_CROSS_ROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# The top-level CMakeLists finds liburing and libunwind with pkg-config. Left
# alone, pkg-config would answer with the *host's* x86_64 libraries; pointing
# it at the target's (normally absent) .pc files makes a cross build go
# without them, as the top-level file intends.
set(ENV{PKG_CONFIG_LIBDIR} "${ZIO_CROSS_ROOT}/lib/pkgconfig:/usr/lib/${ZIO_CROSS_TRIPLE}/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

set(CMAKE_CROSSCOMPILING_EMULATOR ${ZIO_CROSS_QEMU} -L ${ZIO_CROSS_ROOT})
