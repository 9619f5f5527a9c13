#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks that includes, link dependencies and calls run one way between the top-level folders:

    pocketcoderd/ -> api/ -> daemon/ -> isolate/, policies/ -> common/      cli/ -> policies/, common/

  check-layers.py SOURCE_DIR [BUILD_DIR]
  check-layers.py --self-test     (shows that a violation of each kind is found)

Three checks, one TAP line each, for every folder in ALLOWED:
  include  every #include "x.h" (and <x.h> naming one of our headers), resolved as the compiler does:
           beside the including file first, then in the folders of the project's headers;
  meson    every library, dependency, include directory or file of another folder that the folder's
           meson.build names;
  call     (with BUILD_DIR) every symbol the folder's compiled objects use and another folder's objects
           define (nm), so that no prototype written by hand gets around the headers.
A use of a folder that is not in the user's ALLOWED entry is an error, unless it is listed in
KNOWN_VIOLATIONS; a listed violation that no longer occurs is an error too, so the list only shrinks.
tests/, bench/ and rootfs/ may use everything and are not checked.
"""
import os
import re
import subprocess
import sys

# Which folders each folder may use (itself always). The target of DESIGN.md, not today's tree.
ALLOWED = {
    "common": set(),
    "policies": {"common"},
    "isolate": {"common"},
    "daemon": {"isolate", "policies", "common"},
    "api": {"daemon", "common"},
    "pocketcoderd": {"api", "daemon", "common"},
    "cli": {"policies", "common"},
}

# Violations that work in progress removes: the composition root moves from daemon/main.c to
# pocketcoderd/, and the CLI stops joining sandboxes itself. Empty this list once those are merged.
KNOWN_VIOLATIONS = {
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]', re.M)
DEFINITION = re.compile(r"^\s*(\w+)\s*=\s*(?:static_library|shared_library|library|declare_dependency)\s*\(", re.M)
IDENTIFIER = re.compile(r"\b[A-Za-z_]\w*\b")
RELATIVE = re.compile(r"""['"](\.\./[^'"]*)['"]""")


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, good, name, problems=()):
        self.n += 1
        self.failed += not good
        print("%s %d - %s" % ("ok" if good else "not ok", self.n, name))
        for p in problems:
            print("#   " + p)


def sources(src, folder):
    """The C files of FOLDER, relative to SRC."""
    for dirpath, dirnames, filenames in os.walk(os.path.join(src, folder)):
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith((".c", ".h")):
                yield os.path.relpath(os.path.join(dirpath, f), src)


def header_folders(src):
    """Every header of the checked folders: path relative to its folder -> folders that hold it."""
    found = {}
    for folder in ALLOWED:
        for path in sources(src, folder):
            if path.endswith(".h"):
                found.setdefault(os.path.relpath(path, folder), set()).add(folder)
    return found


def top(path):
    return path.split(os.sep, 1)[0]


def include_uses(src, folder, headers):
    """(use, detail, folder used) for every include of FOLDER that resolves to another checked folder."""
    for path in sources(src, folder):
        with open(os.path.join(src, path), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for quote, name in INCLUDE.findall(text):
            beside = os.path.normpath(os.path.join(os.path.dirname(path), name))
            if quote == '"' and os.path.isfile(os.path.join(src, beside)):
                if top(beside) != folder and top(beside) in ALLOWED:
                    yield "include %s -> %s" % (path, beside), "", top(beside)
                continue
            for other in sorted(headers.get(os.path.normpath(name), ())):
                if other != folder:
                    yield "include %s -> %s/%s" % (path, other, name), "", other


def meson_uses(src, folder):
    """(use, detail, folder used) for every other folder's target or path that FOLDER's meson.build names."""
    owners = {}
    for other in ALLOWED:
        build = os.path.join(src, other, "meson.build")
        if os.path.isfile(build):
            with open(build, encoding="utf-8") as f:
                for name in DEFINITION.findall(f.read()):
                    owners[name] = other
    build = os.path.join(src, folder, "meson.build")
    if not os.path.isfile(build):
        return
    with open(build, encoding="utf-8") as f:
        text = re.sub(r"#.*", "", f.read())
    where = "%s/meson.build" % folder
    for name in sorted(set(IDENTIFIER.findall(text))):
        if owners.get(name, folder) != folder:
            yield "meson %s -> %s (%s)" % (where, owners[name], name), "", owners[name]
    for rel in sorted(set(RELATIVE.findall(text))):
        other = top(os.path.normpath(os.path.join(folder, rel)))
        if other != folder and other in ALLOWED:
            yield "meson %s -> %s (%s)" % (where, other, rel), "", other


def object_symbols(build):
    """For each compiled object of a checked folder: (folder, source path, defined, undefined)."""
    objects = []
    for folder in ALLOWED:
        for dirpath, _, filenames in os.walk(os.path.join(build, folder)):
            for f in sorted(filenames):
                if not f.endswith(".c.o"):
                    continue
                obj = os.path.join(dirpath, f)
                out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
                defined, undefined = set(), set()
                for line in out.splitlines():
                    fields = line.split()
                    if len(fields) < 2:
                        continue
                    if fields[1] == "U":
                        undefined.add(fields[0])
                    elif fields[1] in ("T", "D", "B", "R", "C", "V", "W"):
                        defined.add(fields[0])
                # meson names objects after their source: lib.a.p/server.c.o, pocketcoder.p/main.c.o
                objects.append((folder, "%s/%s" % (folder, f[:-2]), defined, undefined))
    return objects


def call_uses(objects, folder):
    """(use, detail, folder used) for every symbol FOLDER's objects take from another folder's objects."""
    definers = {}
    for other, source, defined, _ in objects:
        for sym in defined:
            definers.setdefault(sym, set()).add((other, source))
    seen = set()
    for owner, source, _, undefined in objects:
        if owner != folder:
            continue
        for sym in sorted(undefined):
            for other, where in sorted(definers.get(sym, ())):
                if other != folder and (source, other) not in seen:
                    seen.add((source, other))
                    yield "call %s -> %s/" % (source, other), " (%s in %s, ...)" % (sym, where), other


def check(tap, kind, folder, uses, known_seen):
    problems = []
    for use, detail, other in uses:
        if other in ALLOWED[folder]:
            continue
        if use in KNOWN_VIOLATIONS:
            known_seen.add(use)
            print("# known violation, to be removed: %s%s" % (use, detail))
            continue
        problems.append("%s%s: %s/ may not use %s/ (it may use: %s)"
                        % (use, detail, folder, other, ", ".join(sorted(ALLOWED[folder])) or "nothing"))
    tap.ok(not problems, "%s: %s/ uses only %s" % (kind, folder, ", ".join(sorted(ALLOWED[folder])) or "itself"),
           problems)


def self_test():
    """Runs the include and meson checks on a small tree with one violation of each, in a temp dir."""
    import tempfile
    files = {
        "common/common.h": "#pragma once\n",
        "policies/policies.h": '#include "common.h"\n',
        "isolate/isolate.h": '#include "common.h"\n',
        "daemon/daemon.h": '#include "isolate.h"\n#include "policies.h"\n',
        "daemon/meson.build": "x = static_library('d', dependencies : [libisolate_dep])\n",
        "isolate/meson.build": "libisolate_dep = declare_dependency()\n",
        "api/api.h": '#include "daemon.h"\n',
        # the violations: policies/ includes up the stack, cli/ reaches isolate/
        "policies/decide.c": '#include "../daemon/daemon.h"\n',
        "cli/main.c": "#include <isolate.h>\n",
        "cli/meson.build": "# libisolate_dep in a comment is no use\ny = files('../isolate/isolate.h')\n",
    }
    with tempfile.TemporaryDirectory(prefix="check-layers-") as tmp:
        for path, text in files.items():
            os.makedirs(os.path.join(tmp, os.path.dirname(path)), exist_ok=True)
            with open(os.path.join(tmp, path), "w", encoding="utf-8") as f:
                f.write(text)
        out = subprocess.run([sys.executable, __file__, tmp], capture_output=True, text=True).stdout
    want = ["include policies/decide.c -> daemon/daemon.h: policies/ may not use daemon/",
            "include cli/main.c -> isolate/isolate.h: cli/ may not use isolate/",
            "meson cli/meson.build -> isolate (../isolate/isolate.h): cli/ may not use isolate/"]
    tap = Tap()
    for w in want:
        tap.ok(w in out, "found: " + w, [] if w in out else out.splitlines())
    tap.ok("daemon/ may not" not in out and "api/ may not" not in out,
           "allowed uses are not reported", out.splitlines())
    print("1..%d" % tap.n)
    return 1 if tap.failed else 0


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) not in (2, 3):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    src = sys.argv[1]
    build = sys.argv[2] if len(sys.argv) == 3 else None
    tap = Tap()
    headers = header_folders(src)
    objects = object_symbols(build) if build else None
    known_seen = set()
    folders = [f for f in sorted(ALLOWED) if os.path.isdir(os.path.join(src, f))]
    for folder in folders:
        check(tap, "include", folder, include_uses(src, folder, headers), known_seen)
        check(tap, "meson", folder, meson_uses(src, folder), known_seen)
        if objects is not None:
            check(tap, "call", folder, call_uses(objects, folder), known_seen)
    kinds = ("include", "meson", "call") if objects is not None else ("include", "meson")
    stale = sorted(k for k in KNOWN_VIOLATIONS if k not in known_seen and k.split()[0] in kinds)
    tap.ok(not stale, "KNOWN_VIOLATIONS lists only violations that still occur",
           ["%s: fixed, remove it from KNOWN_VIOLATIONS in %s" % (k, __file__) for k in stale])
    print("1..%d" % tap.n)
    return 1 if tap.failed else 0


if __name__ == "__main__":
    sys.exit(main())
