# loongarch64.cmake - CMake toolchain file: loongarch64 Linux (LP64D) with
# clang, since Debian 12 has no loongarch64 cross gcc; programs run under
# qemu-loongarch64.
#
# Debian 12 has no loongarch64 libc either, so a real build needs a sysroot:
# set LOONGARCH64_SYSROOT (or install one in /usr/loongarch64-linux-gnu).
# Without one, compiling C that includes libc headers fails; tools/cross-test
# then skips the project build and runs only the libc-free arch smoke test.
#
# The clang is the first of $ZIO_CLANG, clang-19 ... clang-16, clang found
# (loongarch64 support is usable from clang 16 on).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR loongarch64)

if(DEFINED ENV{ZIO_CLANG})
  set(_zio_clang $ENV{ZIO_CLANG})
else()
  find_program(_zio_clang NAMES clang-19 clang-18 clang-17 clang-16 clang REQUIRED)
endif()
set(CMAKE_C_COMPILER ${_zio_clang})
set(CMAKE_ASM_COMPILER ${_zio_clang})
set(CMAKE_C_COMPILER_TARGET loongarch64-linux-gnu)
set(CMAKE_ASM_COMPILER_TARGET loongarch64-linux-gnu)

# qemu 7.2 (Debian 12) emulates la464 without the LSX/LASX vector units,
# which clang 19 enables by default for loongarch64-linux-gnu.
set(CMAKE_C_FLAGS_INIT "-march=loongarch64 -mno-lsx")
set(CMAKE_ASM_FLAGS_INIT "-march=loongarch64 -mno-lsx")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-fuse-ld=lld")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-fuse-ld=lld")

if(DEFINED ENV{LOONGARCH64_SYSROOT})
  set(ZIO_CROSS_ROOT $ENV{LOONGARCH64_SYSROOT})
else()
  set(ZIO_CROSS_ROOT /usr/loongarch64-linux-gnu)
endif()
if(EXISTS ${ZIO_CROSS_ROOT})
  set(CMAKE_SYSROOT ${ZIO_CROSS_ROOT})
  set(CMAKE_FIND_ROOT_PATH ${ZIO_CROSS_ROOT})
else()
  # No libc: let configure get past the compiler check, which links a program.
  set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Keep pkg-config from answering with the host's libraries (see gnu-linux.cmake).
set(ENV{PKG_CONFIG_LIBDIR} "${ZIO_CROSS_ROOT}/usr/lib/pkgconfig:${ZIO_CROSS_ROOT}/usr/lib/loongarch64-linux-gnu/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "${ZIO_CROSS_ROOT}")

set(CMAKE_CROSSCOMPILING_EMULATOR qemu-loongarch64 -L ${ZIO_CROSS_ROOT})
