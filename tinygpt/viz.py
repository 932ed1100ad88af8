"""Pictures of the autograd graph: `draw_graph(loss)` is micrograd's draw_dot, for tensors.

Each op Node becomes a box with its op name and its output's shape and dtype; each leaf (a
parameter or an input that requires grad) an ellipse with its name, shape and dtype. The walk
over the graph is iterative, like backward's, so a 100,000-op chain draws without recursion.
An op's output shape and dtype come from the Edges of the ops that consume it (tensor.Edge).
Not here: running anything, or printing; `render` needs the graphviz `dot` binary.
"""

import importlib
import shutil
import subprocess

_tensor = importlib.import_module("tinygpt.tensor")  # the module: tinygpt.tensor is also a function


def _op_name(node):
    return getattr(node.backward, "__name__", "op").removesuffix("_backward")


def _shape_text(shape):
    return str(tuple(shape))  # (16,) for a vector, () for a scalar


def _walk(root):
    """(nodes from inputs to root, leaves, edges (from_key, to_key), output shape per node)."""
    if not isinstance(root, _tensor.Tensor):
        raise TypeError(f"draw_graph(root): expected a Tensor, got {type(root).__name__}")
    if root._node is None:
        return [], [root], [], {}
    order = _tensor._topological_order(root._node)  # consumers first, iterative
    order.reverse()  # producers first, so a node's inputs are typed before it
    if any(node.cache is _tensor._FREED for node in order):
        raise RuntimeError("draw_graph: backward() already freed this graph; draw it before "
                           "backward or call backward(retain_graph=True)")
    leaves, seen, edges = [], set(), []
    shapes = {root._node: {root._index: (root.shape, root.dtype)}}
    for node in order:
        for edge in node.edges:
            if edge is None:
                continue
            if edge.leaf is not None:
                if id(edge.leaf) not in seen:
                    seen.add(id(edge.leaf))
                    leaves.append(edge.leaf)
                edges.append((id(edge.leaf), id(node)))
            else:
                shapes.setdefault(edge.node, {})[edge.index] = (edge.shape, edge.dtype)
                edges.append((id(edge.node), id(node)))
    return order, leaves, edges, shapes


def _dtypes(order, shapes):
    """node -> the dtype of its outputs, as the edges that consume them recorded it."""
    return {node: ", ".join(sorted({str(d) for _, d in shapes.get(node, {}).values()})) or "?"
            for node in order}


def _label(node, shapes, dtypes):
    outs = shapes.get(node, {})
    shape = " ".join(_shape_text(outs[i][0]) for i in sorted(outs)) or "?"
    return f"{_op_name(node)} | {shape} {dtypes[node]}"


def _leaf_label(leaf, names=None):
    name = (names or {}).get(id(leaf)) or leaf.name or "leaf"
    return f"{name} | {_shape_text(leaf.shape)} {leaf.dtype}"


def _dot_text(label):
    """'op | (2, 3) float32' -> two lines in a dot label, quotes escaped."""
    return label.replace('"', '\\"').replace(" | ", "\\n")


def draw_graph(root, names=None, rankdir="LR"):
    """The graphviz `dot` source of the graph that made `root` (see `render` to draw it).
    names: e.g. model.named_parameters(), to label the parameters' leaves."""
    names = {id(t): n for n, t in (names or [])}
    order, leaves, edges, shapes = _walk(root)
    dtypes = _dtypes(order, shapes)
    lines = ["digraph tinygpt {", f'  rankdir="{rankdir}";', '  node [fontname="monospace"];']
    for leaf in leaves:
        lines.append(f'  n{id(leaf)} [shape=ellipse, label="{_dot_text(_leaf_label(leaf, names))}"];')
    for node in order:
        lines.append(f'  n{id(node)} [shape=box, label="{_dot_text(_label(node, shapes, dtypes))}"];')
    for a, b in edges:
        lines.append(f"  n{a} -> n{b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(source, path, format=None):
    """Draw dot `source` into `path` (format from its suffix: svg, png, pdf) with graphviz's dot."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render: the graphviz `dot` binary is not installed (apt-get install "
                           "graphviz); graph_text(root) gives a plain-text tree instead")
    fmt = format or str(path).rsplit(".", 1)[-1]
    subprocess.run([dot, f"-T{fmt}", "-o", str(path)], input=source.encode(), check=True)
    return path


def graph_text(root, names=None):
    """The graph as an indented plain-text tree, root first; a node seen before prints as '^op'."""
    names = {id(t): n for n, t in (names or [])}
    if not isinstance(root, _tensor.Tensor):
        raise TypeError(f"graph_text(root): expected a Tensor, got {type(root).__name__}")
    order, _, _, shapes = _walk(root)
    dtypes = _dtypes(order, shapes)
    lines, printed = [], set()
    stack = [(root._node if root._node is not None else root, 0)]
    while stack:
        item, depth = stack.pop()
        pad = "  " * depth
        if isinstance(item, _tensor.Tensor):
            lines.append(f"{pad}{_leaf_label(item, names).replace(' | ', ' ')}")
            continue
        if item in printed:
            lines.append(f"{pad}^{_op_name(item)}")
            continue
        printed.add(item)
        lines.append(f"{pad}{_label(item, shapes, dtypes).replace(' | ', ' ')}")
        for edge in reversed(item.edges):  # reversed: the first input is popped, so printed, first
            if edge is not None:
                stack.append((edge.leaf if edge.leaf is not None else edge.node, depth + 1))
    return "\n".join(lines)
