#!/usr/bin/env python3
"""Include-dependency check of the core (issue 11, "Done when").

Reads the #include "..." lines of core/src/**/*.c|h and fails when a module
includes a header of a module in the same or a higher layer of LAYERS below
(a module may include its own headers, lower layers' headers and the public
<mooncake/...> headers).  Plugins (plugins/**) may include only their own
headers and mooncake/*.h; tools (tools/**) likewise, apart from the
exceptions listed in TOOL_EXCEPTIONS (tools that link an internal archive on
purpose).  The core's other folders (core/metadata/** backends, core/rpc/**)
may include core/src headers of layers <= BACKEND_MAX_LAYER only (never an
engine module).  The parts above the core (ABOVE_CORE: store/**) may
include only the public headers (mooncake/*.h), the RPC library's rpc/rpc.h
and their own headers: never a header of core/src, core/metadata, core/rpc
(other than rpc.h) or plugins.  An include that names no file of core/src (a generated
header, a header of core/metadata) is outside the layering and not checked.

  check_deps.py [--root DIR] [--layers FILE] [--graph]

--graph prints the module include graph (module -> modules it includes) by
layer.  --layers reads the table from FILE (same format as LAYERS), for the
checker's own fixture tests.  Exit status: 0 clean, 1 violations, 2 usage.
"""
import argparse
import fnmatch
import os
import re
import sys

# Layering of core/src, lowest first.  "N: a b c/" puts modules a, b and the
# folder c/ (every file under core/src/c/) in layer N; "m = glob ..." makes
# the files whose stem (or folder/) matches a glob part of module m.  Any file of
# core/src whose module is not listed here is an error: new modules take a
# place in this table.
LAYERS = """
# base utilities
0: log net token
# formats and parsers
1: descriptor config
# the topology model, the plugin loader
2: topology loader
# the metadata front end (with its store and module host); its backends
# live in core/metadata/ (p2p built in, etcd and http as modules) and the
# RPC layer in core/rpc/: they may include core/src layers <= backend_max
3: metadata
# engine modules, bottom up
5: transports jobs notify
6: rails
7: registry segment
8: pipeline
9: hostapi
10: engine
# the public key/value API over the engine's metadata store (mooncake/kv.h)
11: kv
backend_max: 4
config = config config_*
log = log log_fmt
metadata = metadata md_*
topology = topology topo/
engine = engine engine_md
pipeline = pipeline pipeline_p batch slices
"""

# Highest core/src layer that core/metadata/** and core/rpc/** may include
# ("backend_max: N" in LAYERS).
BACKEND_MAX_LAYER = 4

# tool folder -> core/src headers it may include (it links an internal
# archive of the core on purpose; see core/meson.build).
TOOL_EXCEPTIONS = {
    "tools/topology": {"config.h", "topology.h"},
    "tools/metadata-server": {"config_value.h", "http/http_proto.h", "net.h",
                              "token.h"},
    "tools/conformance": {"config_value.h"},
}

# Folders above the core and what of the core they may include besides
# mooncake/*.h and their own headers.
ABOVE_CORE = ("store",)
ABOVE_CORE_ALLOWED = {"rpc/rpc.h"}

INCLUDE_RE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def parse_layers(text):
    global BACKEND_MAX_LAYER
    layer_of, aliases = {}, []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if "=" in line:
            mod, globs = line.split("=", 1)
            aliases.append((mod.strip(), globs.split()))
            continue
        n, mods = line.split(":", 1)
        if n.strip() == "backend_max":
            BACKEND_MAX_LAYER = int(mods)
            continue
        for m in mods.split():
            if m in layer_of:
                raise SystemExit("layers: %s listed twice" % m)
            layer_of[m] = int(n)
    return layer_of, aliases


def module_of(relpath, aliases):
    """Module of a path relative to core/src: its folder, or its stem."""
    if "/" in relpath:
        stem = relpath.split("/", 1)[0] + "/"
    else:
        stem = os.path.splitext(relpath)[0]
    for mod, globs in aliases:
        if any(fnmatch.fnmatchcase(stem, g) for g in globs):
            return mod
    return stem


def sources(top):
    for d, _, files in os.walk(top):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                yield os.path.join(d, f)


def includes(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return INCLUDE_RE.findall(f.read())


def check_core(root, layer_of, aliases):
    src = os.path.join(root, "core", "src")
    hdrs = core_headers(root)
    errors, graph, files_of = [], {}, {}
    for path in sources(src):
        rel = os.path.relpath(path, src)
        mod = module_of(rel, aliases)
        files_of.setdefault(mod, []).append(rel)
        graph.setdefault(mod, set())
        if mod not in layer_of:
            errors.append("core/src/%s: module '%s' is not in the layering table"
                          % (rel, mod))
            continue
        for inc in includes(path):
            if inc.startswith("mooncake/"):
                continue  # public headers
            if inc not in hdrs and not os.path.exists(
                    os.path.join(os.path.dirname(path), inc)):
                if "/" in inc or not inc.endswith(".h"):
                    continue  # generated, or outside core/src: not layered
                if any(os.path.exists(os.path.join(root, "core", d, inc))
                       for d in os.listdir(os.path.join(root, "core"))):
                    continue
            target = module_of(inc, aliases)
            if target == mod:
                continue
            graph[mod].add(target)
            if target not in layer_of:
                errors.append("core/src/%s includes \"%s\": module '%s' is not in "
                              "the layering table" % (rel, inc, target))
            elif layer_of[target] >= layer_of[mod]:
                errors.append(
                    "core/src/%s (%s, layer %d) includes \"%s\" (%s, layer %d): "
                    "only lower layers may be included"
                    % (rel, mod, layer_of[mod], inc, target, layer_of[target]))
    return errors, graph, files_of


def core_headers(root):
    src = os.path.join(root, "core", "src")
    return {os.path.relpath(p, src) for p in sources(src) if p.endswith(".h")}


def check_outside(root, top, exceptions, hdrs):
    errors = []
    base = os.path.join(root, top)
    if not os.path.isdir(base):
        return errors
    for path in sources(base):
        rel = os.path.relpath(path, root)
        folder = "/".join(rel.split("/")[:2])
        allowed = exceptions.get(folder, set())
        for inc in includes(path):
            if inc.startswith("mooncake/"):
                continue
            if os.path.exists(os.path.join(os.path.dirname(path), inc)):
                continue  # its own header
            if inc in hdrs and inc not in allowed:
                errors.append("%s includes core-internal \"%s\"" % (rel, inc))
    return errors


def check_core_others(root, layer_of, aliases, hdrs):
    """core/metadata/**, core/rpc/**: lower layers of core/src only."""
    errors = []
    core = os.path.join(root, "core")
    for d in sorted(os.listdir(core)):
        if d in ("src", "include") or not os.path.isdir(os.path.join(core, d)):
            continue
        for path in sources(os.path.join(core, d)):
            rel = os.path.relpath(path, root)
            for inc in includes(path):
                if inc not in hdrs:
                    continue
                mod = module_of(inc, aliases)
                layer = layer_of.get(mod)
                if layer is None or layer > BACKEND_MAX_LAYER:
                    errors.append("%s includes \"%s\" (%s, layer %s): core/%s/ may "
                                  "include core/src layers <= %d only"
                                  % (rel, inc, mod, layer, d, BACKEND_MAX_LAYER))
    return errors


def check_above_core(root):
    """store/**: public headers, rpc/rpc.h and its own headers only."""
    errors = []
    core = os.path.join(root, "core")
    # core/ itself: the RPC library's users include "rpc/<file>" from there.
    internal = [core, os.path.join(core, "src"), os.path.join(core, "metadata"),
                os.path.join(core, "rpc")]
    plugins = os.path.join(root, "plugins")
    if os.path.isdir(plugins):
        internal.append(plugins)
        internal += [os.path.join(plugins, d) for d in sorted(os.listdir(plugins))
                     if os.path.isdir(os.path.join(plugins, d))]
    internal = [d for d in internal if os.path.isdir(d)]
    for top in ABOVE_CORE:
        base = os.path.join(root, top)
        if not os.path.isdir(base):
            continue
        for path in sources(base):
            rel = os.path.relpath(path, root)
            for inc in includes(path):
                if inc.startswith("mooncake/") or inc in ABOVE_CORE_ALLOWED:
                    continue
                own = os.path.normpath(os.path.join(os.path.dirname(path), inc))
                if os.path.exists(own) and own.startswith(base + os.sep):
                    continue  # its own header
                hits = [os.path.normpath(os.path.join(d, inc)) for d in internal]
                if os.path.exists(own):
                    hits.insert(0, own)
                hit = next((h for h in hits if os.path.isfile(h) and not
                            h.startswith(base + os.sep)), None)
                if hit:
                    errors.append("%s includes \"%s\" (%s): %s/ may include only the public "
                                  "headers (mooncake/*.h), rpc/rpc.h and its own headers"
                                  % (rel, inc, os.path.relpath(hit, root), top))
    return errors


def print_graph(layer_of, graph, files_of):
    print("core/src include graph (module -> modules whose headers it includes)")
    for n in sorted(set(layer_of.values()), reverse=True):
        for m in sorted(k for k, v in layer_of.items() if v == n):
            if m not in files_of:
                continue
            deps = ", ".join(sorted(graph.get(m, ()), key=lambda x: (-layer_of.get(x, -1), x)))
            print("  L%-2d %-13s -> %s" % (n, m, deps or "(nothing)"))
            print("       %-13s    files: %s" % ("", " ".join(files_of[m])))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    ap.add_argument("--layers", help="read the layering table from this file")
    ap.add_argument("--graph", action="store_true", help="print the include graph")
    a = ap.parse_args()
    root = os.path.abspath(a.root)
    text = LAYERS
    if a.layers:
        with open(a.layers) as f:
            text = f.read()
    layer_of, aliases = parse_layers(text)
    if not os.path.isdir(os.path.join(root, "core", "src")):
        print("%s: no core/src" % root, file=sys.stderr)
        return 2
    errors, graph, files_of = check_core(root, layer_of, aliases)
    hdrs = core_headers(root)
    errors += check_core_others(root, layer_of, aliases, hdrs)
    errors += check_outside(root, "plugins", {}, hdrs)
    errors += check_outside(root, "tools", TOOL_EXCEPTIONS, hdrs)
    errors += check_above_core(root)
    if a.graph:
        print_graph(layer_of, graph, files_of)
    for e in errors:
        print("DEPS VIOLATION: " + e, file=sys.stderr)
    if not errors:
        print("include layering: %d modules in %d layers, no violation"
              % (len(files_of), len(set(layer_of.values()))))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
