"""The product stays small: no function in kernel/, transports/, plugins/ or contexts/ longer
than 50 lines or nested deeper than 4, and no module in kernel/ over 350 lines."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kernel", "transports", "plugins", "contexts")
BLOCKS = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.AsyncFor, ast.AsyncWith, ast.Match)
MODULE_LINES = 350


def nesting(node: ast.AST, depth: int = 0) -> int:
    deepest = depth
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue  # measured on their own
        elif_ = isinstance(node, ast.If) and node.orelse == [child]  # an elif is a sibling, not a level
        deepest = max(deepest, nesting(child, depth + (isinstance(child, BLOCKS) and not elif_)))
    return deepest


def sources():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def test_functions_are_short_and_shallow():
    too_big = []
    for path in sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines, depth = node.end_lineno - node.lineno + 1, nesting(node)
                if lines > 50 or depth > 4:
                    too_big.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: "
                                   f"{lines} lines, nested {depth} deep")
    assert not too_big, "split these:\n" + "\n".join(too_big)


def test_kernel_modules_are_small():
    too_long = []
    for path in sorted((ROOT / "kernel").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        lines = len(path.read_text().splitlines())
        if lines > MODULE_LINES:
            too_long.append(f"{name}: {lines} lines")
    assert not too_long, "split these:\n" + "\n".join(too_long)


def test_the_kernel_imports_no_context():
    """Arrows point into the kernel: contexts build on it, never the other way (the context a
    bare lagom(train) runs in is found through the lagom.contexts entry point)."""
    found = []
    for path in sorted((ROOT / "kernel").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            found += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "contexts"]
    assert not found, "the kernel imports contexts:\n" + "\n".join(found)


def test_only_the_driver_writes_the_journal():
    """The trial book and the handlers say what the journal records through a decisions.Journal
    (made by the driver with the folder's writer); no module of the kernel but driver.py hands a
    records.py function the folder itself, calls ``record``, or writes to a journal or folder."""
    found = []
    writers = {"kernel/records.py", "kernel/driver.py"}  # declares the events / writes them
    for path in sorted((ROOT / "kernel").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            receiver = getattr(node.func.value, "attr", getattr(node.func.value, "id", None))
            if node.func.attr == "record" and name not in writers:
                found.append(f"{name}:{node.lineno} calls .record")
            if node.func.attr == "write" and receiver in ("journal", "folder") and name not in writers:
                found.append(f"{name}:{node.lineno} calls {receiver}.write")
            first = node.args[0] if node.args else None
            held = getattr(first, "attr", getattr(first, "id", None))
            if getattr(node.func.value, "id", None) == "records" and held == "folder" and name != "kernel/driver.py":
                found.append(f"{name}:{node.lineno} writes records.{node.func.attr} to the folder")
    assert not found, "journal writes outside the driver:\n" + "\n".join(found)
