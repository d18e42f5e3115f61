#!/usr/bin/env python3
"""Checks the file-level import graph of the crate in src/.

Two rules (see /work/shared/design/ARCHITECTURE.md):

- no import cycle between files: a cycle means a type lives in the wrong place;
- the sans-io leaves stay leaves: a file in src/proto/ or src/handshake/ imports only files of
  its own directory (src/proto/ -> src/handshake/ or back counts as leaving it).

How the graph is built. The module tree is read from `mod` declarations, starting at
src/lib.rs (`#[path]` attributes and inline `mod name { ... }` blocks included). The edges are
the paths that name this crate's items: every `use` tree (`use crate::...`, `use super::...`,
`use self::...`, paths relative to the current module, `pub use` alike) and every
`crate::a::Item`, `super::a::Item` or `self::a::Item` path inside code (comments and string
literals are ignored). A path is resolved to the file that defines what it names, following
re-exports: `crate::WebSocket` leads to the file that defines `WebSocket`, not to lib.rs. A glob
(`use super::*`) leads to the file of the module it names. A path that reaches an item is
resolved to the file of the module that holds it.

What is not an edge: a `mod` declaration (parent and child are one unit of the tree), and a
re-export by a module of something inside its own descendants (`pub use error::HandshakeError`
in handshake/mod.rs): a mod.rs exporting its children is how a directory shows its API. A bare
path in code that does not start with `crate`, `super` or `self` is not read: it names
something brought into scope by a `use` (already an edge), a glob, or a child module.

Usage: python3 scripts/check_imports.py [--graph] [SRC_DIR]
Exit status: 0 when both rules hold, 1 otherwise (each cycle and violation is printed).
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

LEAF_DIRS = ("proto", "handshake")
IDENT = r"(?:r#)?[A-Za-z_][A-Za-z0-9_]*"


# --- lexing -------------------------------------------------------------------------------------


def strip_code(text: str) -> tuple[str, dict[int, str]]:
    """Returns `text` with comments and the contents of string and char literals blanked out
    (newlines kept, so offsets and line numbers stay), and the string literals found, by the
    offset of their opening quote."""
    out = list(text)
    literals: dict[int, str] = {}
    n = len(text)
    i = 0

    def blank(start: int, end: int) -> None:
        for k in range(start, end):
            if out[k] != "\n":
                out[k] = " "

    def ident_before(pos: int) -> bool:
        return pos > 0 and (text[pos - 1].isalnum() or text[pos - 1] == "_")

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif c in "rb" and not ident_before(i) and (raw := re.match(r'b?r(#*)"', text[i:])):
            hashes = raw.group(1)
            quote = i + raw.end() - 1
            end = text.find('"' + hashes, quote + 1)
            end = n if end < 0 else end
            literals[quote] = text[quote + 1 : end]
            blank(quote + 1, end)
            i = end + 1 + len(hashes)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            literals[i] = text[i + 1 : j]
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            # A char literal ('a', '\n', '\u{..}', b'x'), or a lifetime ('a, 'static).
            if i + 1 < n and text[i + 1] == "\\":
                end = text.find("'", i + 3)
                end = n if end < 0 else end
                blank(i + 1, end)
                i = end + 1
            elif i + 2 < n and text[i + 2] == "'":
                blank(i + 1, i + 2)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out), literals


def matching_brace(code: str, open_at: int) -> int:
    """The offset of the `}` closing the `{` at `open_at` (or the end of the text)."""
    depth = 0
    for k in range(open_at, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    return len(code)


def line_of(code: str, offset: int) -> int:
    return code.count("\n", 0, offset) + 1


# --- use trees ----------------------------------------------------------------------------------

TOKEN = re.compile(rf"\s*(::|{IDENT}|[{{}},*;]|\$crate)")


def tokens_of(text: str) -> list[str] | None:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if not m:
            return None
        tokens.append(m.group(1).removeprefix("r#").replace("$crate", "crate"))
        pos = m.end()
    return tokens


@dataclass
class UsePath:
    segments: list[str]
    glob: bool
    alias: str | None  # the name bound, when not the last segment


def parse_use_tree(tokens: list[str]) -> list[UsePath]:
    """Expands a use tree (`a::{b, c::{self, d as e}, f::*}`) into its paths."""
    pos = 0

    def tree(prefix: list[str]) -> list[UsePath]:
        nonlocal pos
        path = list(prefix)
        if pos < len(tokens) and tokens[pos] == "::":
            pos += 1
        while pos < len(tokens):
            tok = tokens[pos]
            if tok == "{":
                pos += 1
                found: list[UsePath] = []
                while pos < len(tokens) and tokens[pos] != "}":
                    if tokens[pos] == ",":
                        pos += 1
                        continue
                    found.extend(tree(path))
                pos += 1
                return found
            if tok == "*":
                pos += 1
                return [UsePath(path, True, None)]
            if tok in (",", "}", ";"):
                break
            if tok == "self" and path:
                pos += 1
            elif tok == "as":
                pos += 1
                alias = tokens[pos] if pos < len(tokens) else None
                pos += 1
                return [UsePath(path, False, alias)]
            else:
                path.append(tok)
                pos += 1
            if pos < len(tokens) and tokens[pos] == "::":
                pos += 1
        return [UsePath(path, False, None)]

    return tree([])


# --- the crate ----------------------------------------------------------------------------------


@dataclass
class Module:
    path: tuple[str, ...]
    file: Path
    children: set[str] = field(default_factory=set)
    bindings: dict[str, list[str]] = field(default_factory=dict)  # name -> absolute path


@dataclass
class Reference:
    file: Path
    module: tuple[str, ...]
    segments: list[str]  # as written, starting with crate/super/self or a relative name
    glob: bool
    line: int
    text: str
    reexport: bool


MOD_DECL = re.compile(
    rf"((?:#\s*\[[^\]]*\]\s*)*)(?:pub\s*(?:\([^)]*\))?\s*)?\bmod\s+({IDENT})\s*([;{{])"
)
PATH_ATTR = re.compile(r'#\s*\[\s*path\s*=\s*"')
USE_DECL = re.compile(r"(?<![\w$])(pub\s*(?:\([^)]*\))?\s*)?\buse\s+(?=[A-Za-z_:{*$])")
CODE_PATH = re.compile(rf"(?<![\w:$])(\$crate|crate|super|self)((?:\s*::\s*{IDENT})+)")


class Crate:
    def __init__(self, src: Path):
        self.src = src
        self.modules: dict[tuple[str, ...], Module] = {}
        self.references: list[Reference] = []
        self.files: dict[Path, str] = {}
        # (module, name bound, path as written): resolved once the whole tree is known.
        self.pending_bindings: list[tuple[tuple[str, ...], str, list[str]]] = []
        self.load(src / "lib.rs", (), is_mod_rs=True)
        self.bind_uses()

    def load(self, file: Path, module: tuple[str, ...], is_mod_rs: bool) -> None:
        if file in self.files or not file.exists():
            return
        text = file.read_text(encoding="utf-8")
        code, literals = strip_code(text)
        self.files[file] = code
        self.modules[module] = Module(module, file)
        # Inline modules: the span of each, to tell which module an offset is in.
        spans: list[tuple[int, int, tuple[str, ...]]] = []

        def module_at(offset: int) -> tuple[str, ...]:
            inner = module
            for start, end, path in spans:
                if start < offset < end and len(path) > len(inner):
                    inner = path
            return inner

        base_dir = file.parent if is_mod_rs else file.parent / file.stem
        for m in MOD_DECL.finditer(code):
            name = m.group(2).removeprefix("r#")
            parent = module_at(m.start())
            path = parent + (name,)
            self.modules[parent].children.add(name)
            if m.group(3) == "{":
                end = matching_brace(code, m.end() - 1)
                spans.append((m.end() - 1, end, path))
                self.modules[path] = Module(path, file)
                continue
            inline_dirs = parent[len(module) :]
            attr = PATH_ATTR.search(m.group(1))
            if attr:
                literal = literals.get(m.start(1) + attr.end() - 1, "")
                child = file.parent.joinpath(*inline_dirs, literal)
                self.load(child, path, is_mod_rs=child.name == "mod.rs")
                continue
            directory = base_dir.joinpath(*inline_dirs)
            flat, nested = directory / f"{name}.rs", directory / name / "mod.rs"
            if flat.exists():
                self.load(flat, path, is_mod_rs=False)
            elif nested.exists():
                self.load(nested, path, is_mod_rs=True)

        use_spans = []
        for m in USE_DECL.finditer(code):
            end = code.find(";", m.end())
            end = len(code) if end < 0 else end
            tokens = tokens_of(code[m.end() : end])
            if tokens is None:
                continue
            use_spans.append((m.start(), end))
            here = module_at(m.start())
            text_of_use = " ".join(code[m.start() : end + 1].split())
            for path in parse_use_tree(tokens):
                self.references.append(
                    Reference(
                        file,
                        here,
                        path.segments,
                        path.glob,
                        line_of(code, m.start()),
                        text_of_use,
                        reexport=m.group(1) is not None,
                    )
                )
                if not path.glob and path.segments:
                    binding = path.alias or path.segments[-1]
                    if binding not in ("self", "_"):
                        self.pending_bindings.append((here, binding, path.segments))
        for m in CODE_PATH.finditer(code):
            if any(start <= m.start() < end for start, end in use_spans):
                continue
            segments = [m.group(1).replace("$crate", "crate")]
            segments += [s.strip().removeprefix("r#") for s in m.group(2).split("::")[1:]]
            self.references.append(
                Reference(
                    file,
                    module_at(m.start()),
                    segments,
                    False,
                    line_of(code, m.start()),
                    "".join(m.group(0).split()),
                    reexport=False,
                )
            )

    def bind_uses(self) -> None:
        # A use path may start with a name another use binds: repeat until nothing changes.
        for _ in range(8):
            changed = False
            for module, name, segments in self.pending_bindings:
                absolute = self.absolute(module, segments)
                node = self.modules.get(module)
                if absolute is not None and node is not None and node.bindings.get(name) != absolute:
                    node.bindings[name] = absolute
                    changed = True
            if not changed:
                break

    def absolute(self, module: tuple[str, ...], segments: list[str]) -> list[str] | None:
        """The path from the crate root, or `None` for a path into another crate."""
        if not segments:
            return list(module)
        head, rest = segments[0], segments[1:]
        if head == "crate":
            return rest
        if head == "self":
            return list(module) + rest
        if head == "super":
            up = list(module)
            while segments and segments[0] == "super":
                if up:
                    up.pop()
                segments = segments[1:]
            return up + segments
        node = self.modules.get(module)
        if node is None:
            return None
        if head in node.children:
            return list(module) + segments
        if head in node.bindings and node.bindings[head] != segments:
            return node.bindings[head] + rest
        return None

    def resolve(self, absolute: list[str], depth: int = 0) -> tuple[str, ...]:
        """The module that defines what the absolute path names."""
        module: tuple[str, ...] = ()
        for i, name in enumerate(absolute):
            node = self.modules.get(module)
            if node is None:
                break
            if name in node.children:
                module = module + (name,)
                continue
            target = node.bindings.get(name)
            if target is not None and depth < 32 and target != absolute[: i + 1]:
                return self.resolve(target + absolute[i + 1 :], depth + 1)
            break
        return module

    def file_of(self, module: tuple[str, ...]) -> Path:
        while module not in self.modules:
            module = module[:-1]
        return self.modules[module].file


@dataclass
class Edge:
    source: Path
    target: Path
    line: int
    text: str


def build_edges(crate: Crate) -> list[Edge]:
    edges = []
    for ref in crate.references:
        absolute = crate.absolute(ref.module, ref.segments)
        if absolute is None:
            continue
        if ref.reexport and len(absolute) > len(ref.module) and tuple(
            absolute[: len(ref.module)]
        ) == ref.module and absolute[len(ref.module)] in crate.modules[ref.module].children:
            continue  # a module re-exporting its own descendants
        target_module = crate.resolve(absolute) if not ref.glob else tuple(absolute)
        target = crate.file_of(target_module)
        if target != ref.file:
            edges.append(Edge(ref.file, target, ref.line, ref.text))
    return edges


def strongly_connected(nodes: list[Path], succ: dict[Path, list[Path]]) -> list[list[Path]]:
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    found: list[list[Path]] = []
    counter = 0

    def visit(v: Path) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in succ.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in nodes:
        if v not in index:
            visit(v)
    return found


def shortest_cycle(start: Path, members: set[Path], succ: dict[Path, list[Path]]) -> list[Path]:
    """The shortest path start -> ... -> start inside one strongly connected component."""
    previous: dict[Path, Path] = {}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in succ.get(v, []):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return path[::-1] + [start]
                if w in members and w not in previous:
                    previous[w] = v
                    following.append(w)
        frontier = following
    return [start, start]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", nargs="?", default=str(Path(__file__).resolve().parent.parent / "src"))
    parser.add_argument("--graph", action="store_true", help="print every file's imports")
    args = parser.parse_args()
    src = Path(args.src)
    crate = Crate(src)
    edges = build_edges(crate)
    rel = lambda p: p.relative_to(src.parent).as_posix()  # noqa: E731

    for path in sorted(src.rglob("*.rs")):
        if path not in crate.files:
            print(f"warning: {rel(path)} is not in the module tree; not checked", file=sys.stderr)

    succ: dict[Path, list[Path]] = {}
    evidence: dict[tuple[Path, Path], list[Edge]] = {}
    for e in edges:
        if e.target not in succ.setdefault(e.source, []):
            succ[e.source].append(e.target)
        evidence.setdefault((e.source, e.target), []).append(e)

    if args.graph:
        for source in sorted(succ):
            print(f"{rel(source)} -> {', '.join(sorted(rel(t) for t in succ[source]))}")

    failed = False
    for component in strongly_connected(sorted(crate.files), succ):
        failed = True
        cycle = shortest_cycle(component[0], set(component), succ)
        print(f"cycle: {' -> '.join(rel(p) for p in cycle)}")
        if len(component) > len(cycle) - 1:
            print(f"  (all of {', '.join(rel(p) for p in component)} are on cycles)")
        for a, b in zip(cycle, cycle[1:]):
            for line, text in sorted({(e.line, e.text) for e in evidence[(a, b)]})[:3]:
                print(f"  {rel(a)}:{line}: {text}")

    seen = set()
    for e in sorted(edges, key=lambda e: (e.source, e.line)):
        if (e.source, e.line, e.text) in seen:
            continue
        seen.add((e.source, e.line, e.text))
        parts = e.source.relative_to(src).parts
        if len(parts) > 1 and parts[0] in LEAF_DIRS:
            leaf = src / parts[0]
            if leaf not in e.target.parents:
                failed = True
                print(
                    f"leaf: {rel(e.source)}:{e.line} imports {rel(e.target)} "
                    f"(src/{parts[0]}/ imports only from itself): {e.text}"
                )
    if not failed:
        print(f"imports ok: {len(crate.files)} files, {len(set((e.source, e.target) for e in edges))} edges, no cycle, leaves are leaves")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
