"""tinygpt: a from-scratch deep-learning engine for GPT-style language models.

`tinygpt.Tensor` with reverse-mode autograd, `tinygpt.functional` (as F) for every op,
`tinygpt.backend` for which kernel runs each op.
"""

__version__ = "0.1.0"

from tinygpt.tensor import Tensor, no_grad, is_grad_enabled  # noqa: E402
from tinygpt import functional  # noqa: E402
from tinygpt.functional import tensor  # noqa: E402

__all__ = ["Tensor", "no_grad", "is_grad_enabled", "functional", "tensor", "__version__"]
