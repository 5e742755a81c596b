#!/usr/bin/env python3
"""Installs the texts of `kvopt eval` and calibration: Jane Austen's "Pride
and Prejudice" (evaluation) and "Emma" (calibration, so that calibrated
scales never see the evaluated text), both public domain, from the Debian
package r-cran-janeaustenr.

The package stores the novels as R lazy-load data: data/Rdata.rdx is a gzip'd
R serialization (XDR, version 3) of a list whose `variables` member maps each
object's name to its (offset, length) in data/Rdata.rdb; each .rdb record is
a 4-byte big-endian uncompressed length and a zlib stream holding the
serialization of a character vector, one element per line. This script reads
exactly that (no R needed), joins the lines of `prideprejudice` (`emma`) with
'\\n' and writes pride-and-prejudice.txt (emma.txt) under
${KVOPT_DATA_DIR:-~/.local/share/kvopt}/data. The .deb and the texts are
checked against pinned sha256 sums. Quiet when the texts are installed.
"""
import gzip
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

PACKAGE = "r-cran-janeaustenr"
VERSION = "1.0.0-1"
DEB = f"{PACKAGE}_{VERSION}_all.deb"
DEB_SHA256 = "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95"
DATA = "usr/lib/R/site-library/janeaustenr/data/Rdata"
# R variable -> (file written, its pinned sha256).
TEXTS = {
    "prideprejudice": ("pride-and-prejudice.txt",
                       "2e44edaa4946d64ad541c68e0224f5d672f43bf3ce2a8a0b0637ad5e02fc6eb3"),
    "emma": ("emma.txt",
             "dd08b340a56ad4a0a00718d5682528a5a5886ae0aef91c9e0fa528074fa64b75"),
}

# R's SEXP types and serialization codes that this data uses.
SYMSXP, LISTSXP, LGLSXP, INTSXP, CHARSXP, STRSXP, VECSXP = 1, 2, 10, 13, 9, 16, 19
REFSXP, NILVALUE_SXP = 255, 254
HAS_ATTR, HAS_TAG = 1 << 9, 1 << 10
LATIN1_MASK, BYTES_MASK = 1 << 2, 1 << 1
NA_LENGTH = -1
# The lazy-load index nests 4 deep; anything far deeper is not this data.
MAX_DEPTH = 32
# The novel's serialization is about 1 MB; refuse to inflate far beyond.
MAX_OBJECT_BYTES = 64 << 20


class FormatError(Exception):
    pass


class Reader:
    """R's XDR serialization format 3, restricted to the types above."""

    def __init__(self, data, name):
        self.data, self.name, self.pos, self.refs = data, name, 0, []
        self.depth = 0
        if data[:2] != b"X\n":
            self.fail("does not start with the XDR serialization mark 'X\\n'")
        self.pos = 2
        version = self.int("format version")
        if version != 3:
            self.fail(f"has serialization format {version}, not 3")
        self.int("writer version")
        self.int("minimal reader version")
        self.bytes(self.length("native encoding length"), "native encoding")

    def fail(self, what):
        raise FormatError(f"{self.name} {what} (at byte {self.pos})")

    def bytes(self, n, field):
        if n > len(self.data) - self.pos:
            self.fail(f"ends inside its {field}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self, field):
        return struct.unpack(">i", self.bytes(4, field))[0]

    def length(self, field):
        n = self.int(field)
        if n == -1:
            self.fail(f"uses a long vector {field}, which this data never has")
        if n < 0:
            self.fail(f"has a negative {field}")
        return n

    def item(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"nests objects deeper than {MAX_DEPTH}")
        value = self.object(self.int("item flags"))
        self.depth -= 1
        return value

    def object(self, flags):
        kind = flags & 0xFF
        if kind == NILVALUE_SXP:
            return None
        if kind == REFSXP:
            index = flags >> 8 or self.int("reference index")
            if not 1 <= index <= len(self.refs):
                self.fail(f"refers to object {index} of {len(self.refs)}")
            return self.refs[index - 1]
        if kind == SYMSXP:
            name = self.item()
            if not isinstance(name, str):
                self.fail("names a symbol with something other than a string")
            symbol = ("symbol", name)
            self.refs.append(symbol)
            return symbol
        if kind == CHARSXP:
            n = self.int("string length")
            if n == NA_LENGTH:
                return None
            if n < 0:
                self.fail("has a negative string length")
            raw = self.bytes(n, "string")
            if flags >> 12 & (LATIN1_MASK | BYTES_MASK):
                self.fail("holds a string that is not marked UTF-8 or ASCII")
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                self.fail("holds a string that is not valid UTF-8")
        if kind == LISTSXP:
            return self.pairlist(flags)
        if kind in (STRSXP, VECSXP, INTSXP, LGLSXP):
            n = self.length("vector length")
            if kind in (INTSXP, LGLSXP):
                values = list(struct.unpack(f">{n}i", self.bytes(4 * n, "vector")))
            else:
                values = [self.item() for _ in range(n)]
            if not flags & HAS_ATTR:
                return values
            return self.named(values, self.item())
        self.fail(f"holds an object of R type {kind}, which this data never has")


    def pairlist(self, flags):
        """A pairlist as [(tag, value), ...], read iteratively."""
        items = []
        while True:
            if flags & HAS_ATTR:
                self.item()
            tag = self.item() if flags & HAS_TAG else None
            if not (tag is None or isinstance(tag, tuple)):
                self.fail("tags a pairlist element with something other "
                          "than a symbol")
            items.append((tag, self.item()))
            flags = self.int("item flags")
            if flags & 0xFF == NILVALUE_SXP:
                return items
            if flags & 0xFF != LISTSXP:
                self.fail("ends a pairlist with something other than NULL")

    def named(self, values, attributes):
        """`values` as a dict when the attributes give them names."""
        if not (isinstance(attributes, list)
                and all(isinstance(a, tuple) and len(a) == 2
                        for a in attributes)):
            self.fail("gives a vector attributes that are not a pairlist")
        names = dict(attributes).get(("symbol", "names"))
        if names is None or not values:
            return values
        if not (isinstance(names, list) and len(names) == len(values)
                and all(isinstance(n, str) for n in names)):
            self.fail("gives a vector names that do not match its elements")
        return dict(zip(names, values))


def unserialize(data, name):
    reader = Reader(data, name)
    value = reader.item()
    if reader.pos != len(data):
        reader.fail("has bytes after its object")
    return value


def read_lines(rdx_path, rdb_path, variable):
    """The lines of variable from an R lazy-load database."""
    with open(rdx_path, "rb") as f:
        try:
            with gzip.GzipFile(fileobj=f) as stream:
                raw = stream.read(MAX_OBJECT_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise FormatError(f"{rdx_path} is not a gzip stream: {e}")
    if len(raw) > MAX_OBJECT_BYTES:
        raise FormatError(f"{rdx_path} inflates to more than "
                          f"{MAX_OBJECT_BYTES} bytes")
    index = unserialize(raw, rdx_path)
    if not isinstance(index, dict) or index.get("compressed") != [1]:
        raise FormatError(f"{rdx_path} is not an index of zlib-compressed "
                          "objects (its `compressed` field is not TRUE)")
    variables = index.get("variables")
    if not isinstance(variables, dict) or variable not in variables:
        raise FormatError(f"{rdx_path} has no variable `{variable}`")
    where = variables[variable]
    if not (isinstance(where, list) and len(where) == 2
            and all(isinstance(v, int) for v in where) and where[0] >= 0
            and where[1] > 4):
        raise FormatError(f"{rdx_path} gives `{variable}` no valid (offset, "
                          "length)")
    offset, length = where
    with open(rdb_path, "rb") as f:
        f.seek(offset)
        record = f.read(length)
    if len(record) != length:
        raise FormatError(f"{rdb_path} ends inside the record of `{variable}`")
    expected = struct.unpack(">I", record[:4])[0]
    if expected > MAX_OBJECT_BYTES:
        raise FormatError(f"{rdb_path}: the record of `{variable}` claims "
                          f"{expected} bytes, more than a novel takes")
    try:
        stream = zlib.decompressobj()
        data = stream.decompress(record[4:], expected + 1)
    except zlib.error as e:
        raise FormatError(f"{rdb_path}: the record of `{variable}` is not a "
                          f"zlib stream: {e}")
    if len(data) != expected:
        raise FormatError(f"{rdb_path}: the record of `{variable}` holds "
                          f"{len(data)} bytes, its header says {expected}")
    lines = unserialize(data, f"{rdb_path} (`{variable}`)")
    if not isinstance(lines, list) or not all(isinstance(s, str) for s in lines):
        raise FormatError(f"{rdb_path}: `{variable}` is not a vector of "
                          "strings without NA")
    return lines


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def apt_get(*args):
    command = ["apt-get", *args]
    if os.geteuid() != 0:
        command.insert(0, "sudo")
    subprocess.run(command, check=True)


def fetch_deb(folder):
    """Downloads the pinned .deb into `folder` (no install)."""
    spec = f"{PACKAGE}={VERSION}"
    known = subprocess.run(["apt-cache", "show", spec], capture_output=True)
    if known.returncode != 0:
        apt_get("update", "-qq")
    # As root, apt hands the download to its sandbox user, who cannot write
    # into a private temporary folder.
    sandbox = ["-o", "APT::Sandbox::User=root"] if os.geteuid() == 0 else []
    subprocess.run(["apt-get", "download", "-qq", *sandbox, spec], cwd=folder,
                   check=True)
    deb = os.path.join(folder, DEB)
    if sha256(deb) != DEB_SHA256:
        raise FormatError(f"{DEB} does not match its pinned sha256")
    return deb


def main():
    data_dir = os.environ.get("KVOPT_DATA_DIR") or os.path.join(
        os.environ.get("XDG_DATA_HOME")
        or os.path.join(os.path.expanduser("~"), ".local", "share"), "kvopt")
    missing = {variable: (text, digest)
               for variable, (text, digest) in TEXTS.items()
               if not (os.path.isfile(os.path.join(data_dir, "data", text))
                       and sha256(os.path.join(data_dir, "data", text))
                       == digest)}
    if not missing:
        return 0
    print("setup: fetching " + ", ".join(t for t, _ in missing.values()) +
          f" from Debian package {PACKAGE}")
    tmp = tempfile.mkdtemp()
    try:
        deb = fetch_deb(tmp)
        tree = os.path.join(tmp, "x")
        subprocess.run(["dpkg", "-x", deb, tree], check=True)
        for variable, (name, digest) in missing.items():
            lines = read_lines(os.path.join(tree, DATA + ".rdx"),
                               os.path.join(tree, DATA + ".rdb"), variable)
            text = os.path.join(tmp, name)
            with open(text, "w", encoding="utf-8", newline="") as f:
                f.write("\n".join(lines))
            if sha256(text) != digest:
                raise FormatError(f"{name} read from {DEB} does not match its "
                                  "pinned sha256")
            dest = os.path.join(data_dir, "data", name)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(text, dest + ".part")
            os.replace(dest + ".part", dest)
    except (FormatError, OSError, subprocess.CalledProcessError) as e:
        print(f"setup: {e}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
