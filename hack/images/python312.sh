#!/usr/bin/env bash
# Stage (once) a trimmed, relocatable copy of the build host's pyenv CPython 3.12 for the trainer
# image's /opt/python3.12 (Debian bookworm has no 3.12; pyenv built it against bookworm's libs)
# and print the staged directory: ~/.cache/arclight/images/python3.12-<version>-<hash>.
# The copy drops tests, IDLE/Tk, headers, the static library, pip and optimized bytecode.
# Its RUNPATH still names the pyenv prefix; the image adds /opt/python3.12/lib to ld.so.conf.
set -euo pipefail
CACHE="${ARCLIGHT_CACHE:-$HOME/.cache/arclight}/images"
log() { echo "python312: $*" >&2; }

src="${ARCLIGHT_PYTHON312:-$(ls -d "$HOME"/.pyenv/versions/3.12.* 2>/dev/null | sort -V | tail -1)}"
[ -x "$src/bin/python3.12" ] || { log "no CPython 3.12 found (pyenv install 3.12, or set ARCLIGHT_PYTHON312)"; exit 1; }
version="$("$src/bin/python3.12" -c 'import platform; print(platform.python_version())')"
key="$(printf '%s\n' "$src" "$version" | cat - "$0" | sha256sum | cut -c1-12)"
dest="$CACHE/python3.12-$version-$key"
if [ -d "$dest" ]; then echo "$dest"; exit 0; fi

mkdir -p "$CACHE"
rm -rf "$dest.tmp"
lib=lib/python3.12
rsync -a --delete \
  --exclude="/$lib/test/" --exclude="/$lib/idlelib/" --exclude="/$lib/tkinter/" \
  --exclude="/$lib/turtledemo/" --exclude="/$lib/lib-dynload/_tkinter*" \
  --exclude="/$lib/config-3.12-*/*.a" --exclude="/$lib/site-packages/*" \
  --exclude='*.opt-1.pyc' --exclude='*.opt-2.pyc' \
  --exclude=/include/ --exclude=/share/ --exclude=/lib/pkgconfig/ \
  --exclude='/bin/idle*' --exclude='/bin/2to3*' --exclude='/bin/pydoc*' --exclude='/bin/pip*' \
  --exclude='/bin/*-config' --exclude='/bin/*-gdb.py' \
  "$src/" "$dest.tmp/"
"$dest.tmp/bin/python3.12" -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, venv, ensurepip' \
  || { log "staged interpreter is incomplete"; exit 1; }
mv "$dest.tmp" "$dest"
log "staged $src as $dest ($(du -sh "$dest" | cut -f1))"
echo "$dest"
