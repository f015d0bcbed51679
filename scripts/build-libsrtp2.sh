#!/usr/bin/env bash
# Builds libsrtp2 from Debian's own source package with OpenSSL as its crypto backend, into $1.
# Why: Debian's binary libsrtp2 is built on NSS, whose AES calls allocate on every packet (seen on
# the SFU's worker thread); the OpenSSL backend keeps its cipher contexts per stream.
# $2, optional: a sanitizer (address, thread) to build it with, by the Swift toolchain's clang, so
# that the sanitizer builds of `make test` see inside libsrtp2 too.
set -euo pipefail
prefix="$1"
sanitizer="${2:-}"
[ -f "$prefix/lib/libsrtp2.a" ] && exit 0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/sources" "$work/lists/partial"
chmod -R a+rwX "$work"  # apt drops to its _apt user to download
cat > "$work/sources/src.sources" <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_options=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$work/sources" -o "Dir::State::Lists=$work/lists")
echo "fetching Debian's libsrtp2 source"
apt-get "${apt_options[@]}" -qq update
(cd "$work" && apt-get "${apt_options[@]}" -qq source --download-only libsrtp2 2>/dev/null)
tar -xzf "$work"/libsrtp2_*.orig.tar.gz -C "$work"
cd "$work"/libsrtp-*
echo "building libsrtp2 with OpenSSL into $prefix"
if [ -n "$sanitizer" ]; then
  export CC=clang CFLAGS="-fsanitize=$sanitizer -g -O1 -fno-omit-frame-pointer" LDFLAGS="-fsanitize=$sanitizer"
  # The toolchain's ThreadSanitizer runtime intercepts libdispatch: configure's test programs
  # link only with the toolchain's own libdispatch beside it.
  swift_lib="$(dirname "$(dirname "$(command -v clang)")")/lib/swift/linux"
  [ "$sanitizer" = thread ] && LDFLAGS="$LDFLAGS -L$swift_lib -ldispatch -lBlocksRuntime -Wl,-rpath,$swift_lib"
  echo "  (with -fsanitize=$sanitizer)"
fi
./configure --quiet --prefix="$prefix" --enable-openssl > "$work/configure.log"
make -j"$(nproc)" > "$work/make.log" 2>&1 || { tail -20 "$work/make.log"; exit 1; }
make install > "$work/install.log" 2>&1
echo "libsrtp2 $(pkg-config --modversion "$prefix/lib/pkgconfig/libsrtp2.pc") with OpenSSL ready"
