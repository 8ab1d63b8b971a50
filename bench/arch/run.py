"""Structure figures of the code, today beside a baseline revision, measured in the same run.

Counts, for the project packages (``levqor memory policies tools agents workers api``; tests, benchmarks
and migrations left out): import cycles between files, imports that point up the layers, imports of
project modules written inside functions, ``# type: ignore`` comments, ``registry.invoke`` calls from the
edges (and those passing a dict); and the largest files, tests and benchmarks included. The baseline is a
git revision (default: the commit before the architecture redesign), read with ``git archive``.

    python bench/arch/run.py [--base REV] [--json]

The last line is ``arch: key=value ...`` with today's figures and the baseline's.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from pathlib import Path

PACKAGES = ("levqor", "memory", "policies", "tools", "agents", "workers", "api")
# Layer rank, bottom to top; the two edges share the top.
RANK = {"levqor": 0, "memory": 1, "policies": 2, "tools": 3, "agents": 4, "workers": 5, "api": 5}
BASE_DEFAULT = "d3fc9f6"


def _files(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root)
            if "migrations" in rel.parts and "versions" in rel.parts:
                continue
            mod = ".".join(rel.with_suffix("").parts)
            out[mod.removesuffix(".__init__")] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest project module that ``name`` (a dotted import target) names."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in modules:
            return cand
    return None


class _Imports(ast.NodeVisitor):
    def __init__(self, mod: str, is_pkg: bool) -> None:
        self.mod, self.is_pkg = mod, is_pkg
        self.depth = 0
        self.type_checking = 0
        self.found: list[tuple[str, bool, bool]] = []  # (target, in a function, under TYPE_CHECKING)

    def _abs(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.mod.split(".")
        base = base if self.is_pkg else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, node: ast.If) -> None:
        tc = "TYPE_CHECKING" in ast.unparse(node.test)
        self.type_checking += tc
        for child in node.body:
            self.visit(child)
        self.type_checking -= tc
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.found.append((alias.name, self.depth > 0, self.type_checking > 0))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._abs(node)
        for alias in node.names:
            self.found.append((f"{base}.{alias.name}", self.depth > 0, self.type_checking > 0))


def measure(root: Path) -> dict[str, object]:
    modules = _files(root)
    edges: dict[str, set[str]] = defaultdict(set)
    upward: dict[str, int] = defaultdict(int)
    function_level = 0
    ignores = 0
    invokes = 0
    dict_invokes = 0
    sizes: list[tuple[int, str]] = []
    for mod, path in modules.items():
        text = path.read_text()
        rel = str(path.relative_to(root))
        lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        sizes.append((lines, rel))
        ignores += text.count("type: ignore")
        tree = ast.parse(text)
        v = _Imports(mod, path.name == "__init__.py")
        v.visit(tree)
        for target, in_function, type_only in v.found:
            dst = _resolve(target, modules)
            if dst is None or dst == mod:
                continue
            if in_function:
                function_level += 1
            if type_only:
                continue
            edges[mod].add(dst)
            a, b = mod.split(".")[0], dst.split(".")[0]
            if RANK[b] > RANK[a] or (RANK[a] == RANK[b] and a != b and a != "api"):
                upward[f"{a}->{b}"] += 1
            elif RANK[b] < RANK[a] - 1 and not (a in ("api", "workers") and dst in ("memory.db",)) and not (
                    a == "agents" and dst.startswith("memory.agents.checkpoint")):
                if (a, b) in (("agents", "memory"), ("api", "memory"), ("workers", "memory")):
                    upward[f"{a}->{b} (bypass)"] += 1
        if mod.split(".")[0] in ("api", "workers"):
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "invoke":
                    invokes += 1
                    if len(node.args) >= 3 and isinstance(node.args[2], ast.Dict | ast.DictComp):
                        dict_invokes += 1
    for extra in ("bench", "tests"):
        for path in sorted((root / extra).rglob("*.py")):
            text = path.read_text()
            sizes.append((text.count("\n") + (0 if text.endswith("\n") else 1), str(path.relative_to(root))))
    cycles = _sccs(modules, edges)
    cross = [c for c in cycles if len({m.split(".")[0] for m in c}) > 1]
    sizes.sort(reverse=True)
    return {
        "files": len(modules),
        "cycles": len(cycles),
        "cycles_across_packages": len(cross),
        "largest_cycle": max((len(c) for c in cycles), default=0),
        "cycle_members": [sorted(c) for c in cycles],
        "upward_imports": dict(sorted(upward.items())),
        "upward_total": sum(upward.values()),
        "function_level_imports": function_level,
        "type_ignores": ignores,
        "edge_invokes": invokes,
        "edge_dict_invokes": dict_invokes,
        "largest_files": [f"{path} {n}" for n, path in sizes[:8]],
        "files_over_500": sum(1 for n, _ in sizes if n > 500),
    }


def _sccs(nodes: dict[str, Path], edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one file (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on.add(start)
        while work:
            node, it = work[-1]
            for nxt in it:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(sorted(edges.get(nxt, ())))))
                    break
                if nxt in on:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    if len(comp) > 1:
                        out.append(comp)
    return out


def _checkout(rev: str, into: Path) -> Path:
    data = subprocess.run(["git", "archive", rev], capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default=BASE_DEFAULT, help="baseline git revision")
    ap.add_argument("--json", action="store_true", help="print every figure as JSON")
    args = ap.parse_args()
    root = Path(__file__).resolve().parents[2]
    now = measure(root)
    with tempfile.TemporaryDirectory() as tmp:
        base = measure(_checkout(args.base, Path(tmp)))
    if args.json:
        print(json.dumps({"now": now, "base": base}, indent=2))
    else:
        for key in ("cycles", "cycles_across_packages", "largest_cycle", "upward_total", "function_level_imports",
                    "type_ignores", "edge_invokes", "edge_dict_invokes", "files_over_500"):
            print(f"{key:26} now {now[key]!s:>6}   base {base[key]!s:>6}")
        print("upward imports now: ", now["upward_imports"])
        print("upward imports base:", base["upward_imports"])
        print("largest now: ", ", ".join(now["largest_files"][:5]))
        print("largest base:", ", ".join(base["largest_files"][:5]))
        print("cycles now:", now["cycle_members"])
    print("arch: " + " ".join(
        f"{k}={now[k]} base_{k}={base[k]}" for k in ("cycles", "upward_total", "function_level_imports",
                                                      "type_ignores", "edge_dict_invokes", "files_over_500")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
