"""The kernel stays small: no function in kernel/ longer than 50 lines or nested deeper than 4."""
import ast
from pathlib import Path

KERNEL = Path(__file__).resolve().parent.parent / "kernel"
BLOCKS = (ast.If, ast.For, ast.While, ast.Try, ast.With, ast.AsyncFor, ast.AsyncWith, ast.Match)


def nesting(node: ast.AST, depth: int = 0) -> int:
    deepest = depth
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue  # measured on their own
        elif_ = isinstance(node, ast.If) and node.orelse == [child]  # an elif is a sibling, not a level
        deepest = max(deepest, nesting(child, depth + (isinstance(child, BLOCKS) and not elif_)))
    return deepest


def test_kernel_functions_are_short_and_shallow():
    too_big = []
    for path in sorted(KERNEL.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines, depth = node.end_lineno - node.lineno + 1, nesting(node)
                if lines > 50 or depth > 4:
                    too_big.append(f"{path.relative_to(KERNEL.parent)}:{node.lineno} {node.name}: "
                                   f"{lines} lines, nested {depth} deep")
    assert not too_big, "split these:\n" + "\n".join(too_big)
