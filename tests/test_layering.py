"""The package's layering: no import cycle among repr_learn's modules (imports
inside functions included, which hide a cycle from Python but not from a
reader), and no library module importing a command-line tool."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "repr_learn"
TOOLS = {f"repr_learn.{name}" for name in
         ("evaluate", "embed", "plot", "report", "export", "import_weights")}


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
  """module -> the repr_learn modules it imports anywhere in its file."""
  modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets.update(a.name for a in node.names)
      elif isinstance(node, ast.ImportFrom) and node.module:
        targets.update(f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules
                       else node.module for a in node.names)
    graph[name] = {t for t in targets if t in modules and t != name}
  return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle as [a, b, ..., a], or None (depth-first search)."""
  state, path = {}, []

  def visit(node):
    state[node] = "open"
    path.append(node)
    for target in sorted(graph[node]):
      if state.get(target) == "open":
        return path[path.index(target):] + [target]
      if target not in state:
        found = visit(target)
        if found:
          return found
    state[node] = "done"
    path.pop()
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def test_the_cycle_finder_finds_a_cycle():
  assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_modules():
  cycle = _cycle(_import_graph())
  assert cycle is None, " -> ".join(cycle)


def test_no_library_module_imports_a_command_line_tool():
  graph = _import_graph()
  offenders = {m: sorted(graph[m] & TOOLS) for m in graph if m not in TOOLS and graph[m] & TOOLS}
  assert not offenders, offenders
