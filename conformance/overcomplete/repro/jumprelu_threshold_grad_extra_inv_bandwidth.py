"""overcomplete 0.3.0: the threshold pseudo-gradients of JumpReLU and HeavisidePseudoGradient are
JUMP-3's and JUMP-4's (the JumpReLU paper's) divided by the bandwidth eps once more: the kernels
already return K(u/eps)/eps (rectangle_kernel: 1[|u| <= eps/2] / eps, although its docstring says
"y = 1"), and backward multiplies that by theta/eps (resp. 1/eps) again.

overcomplete/sae/jump_sae.py:68 (JumpReLU.backward) and :127 (HeavisidePseudoGradient.backward),
overcomplete/sae/kernels.py:31 (rectangle_kernel)."""

import importlib.util
import sys
import types

import numpy as np
import torch

# import overcomplete.sae without the package's __init__ (it imports torchvision)
spec = importlib.util.find_spec("overcomplete")
package = types.ModuleType("overcomplete")
package.__path__ = list(spec.submodule_search_locations)
sys.modules["overcomplete"] = package
from overcomplete.sae.jump_sae import heaviside, jump_relu  # noqa: E402
from overcomplete.sae.kernels import rectangle_kernel  # noqa: E402

eps, theta0, z0 = 0.5, 1.0, 1.1  # z - theta = 0.1, inside the window |z - theta| < eps/2
K = float(abs((z0 - theta0) / eps) < 0.5)  # rectangle kernel K(u) = 1[|u| < 1/2]
# JUMP-3: d f/d theta := -(theta/eps) K((z - theta)/eps); JUMP-4: d H/d theta := -(1/eps) K(...)
expected = np.array([-(theta0 / eps) * K, -(1 / eps) * K])

actual = []
for fn in (jump_relu, heaviside):
    z = torch.tensor([[z0]], dtype=torch.float64)
    theta = torch.tensor([theta0], dtype=torch.float64, requires_grad=True)
    fn(z, theta, rectangle_kernel, eps).sum().backward()  # upstream gradient 1
    actual.append(float(theta.grad[0]))
actual = np.array(actual)
print("expected: [d jump_relu/d theta, d heaviside/d theta] =", expected.tolist())  # [-2, -2]
print("actual:   [d jump_relu/d theta, d heaviside/d theta] =", actual.tolist())  # [-4, -4]
bug = not np.allclose(actual, expected)
print("BUG REPRODUCED" if bug else "fixed")
raise SystemExit(1 if bug else 0)
