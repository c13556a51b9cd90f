import math

import pytest
import torch

from inerf.geometry import se3

DTYPES = [torch.float32, torch.float64]


def random_twists(n, dtype, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 6, generator=g, dtype=torch.float64) * scale).to(dtype)


class TestExpLog:
    def test_smoke_shapes(self):
        xi = torch.zeros(2, 5, 6)
        T = se3.se3_exp(xi)
        assert T.shape == (2, 5, 4, 4)
        assert se3.se3_log(T).shape == (2, 5, 6)

    def test_zero_twist_is_identity(self):
        T = se3.se3_exp(torch.zeros(6, dtype=torch.float64))
        assert torch.equal(T, torch.eye(4, dtype=torch.float64))

    @pytest.mark.parametrize("dtype", DTYPES)
    @pytest.mark.parametrize("scale", [1e-9, 1e-4, 0.3, 1.0, 2.5])
    def test_exp_log_round_trip(self, dtype, scale):
        xi = random_twists(64, dtype, scale)
        # keep rotation angles below pi, where log is unique
        phi = xi[:, 3:]
        n = phi.norm(dim=-1, keepdim=True)
        xi = torch.cat([xi[:, :3], torch.where(n > 3.0, phi / n * 3.0, phi)], -1)
        back = se3.se3_log(se3.se3_exp(xi))
        tol = 1e-5 if dtype == torch.float32 else 1e-10
        assert torch.allclose(back, xi, atol=tol * max(1.0, scale))

    def test_log_exp_round_trip_near_pi(self):
        axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
        axis = axis / axis.norm()
        for angle in [math.pi - 1e-2, math.pi - 1e-5, math.pi]:
            R = se3.so3_exp(axis * angle)
            R2 = se3.so3_exp(se3.so3_log(R))
            assert torch.allclose(R2, R, atol=1e-9)

    @pytest.mark.parametrize("dtype", DTYPES)
    def test_exp_is_rigid(self, dtype):
        T = se3.se3_exp(random_twists(32, dtype, 2.0))
        R = T[:, :3, :3]
        eye = torch.eye(3, dtype=dtype)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        assert torch.allclose(R.transpose(-1, -2) @ R, eye.expand_as(R), atol=tol)
        assert torch.allclose(torch.linalg.det(R), torch.ones(32, dtype=dtype), atol=tol)
        assert torch.equal(T[:, 3], torch.tensor([0, 0, 0, 1], dtype=dtype).expand(32, 4))

    def test_known_values(self):
        # 90 degrees about z, then translation: V rho for a pure rotation of pi/2 about z.
        xi = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.0, math.pi / 2], dtype=torch.float64)
        T = se3.se3_exp(xi)
        assert torch.allclose(
            T[:3, :3], torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]], dtype=torch.float64), atol=1e-12
        )
        # V = I + (1 - cos t)/t^2 K + (t - sin t)/t^3 K^2 with t = pi/2, applied to (1, 0, 0):
        t = math.pi / 2
        b, c = (1 - math.cos(t)) / t**2, (t - math.sin(t)) / t**3
        expected = torch.tensor([1 - c * t**2, b * t, 0.0], dtype=torch.float64)
        assert torch.allclose(T[:3, 3], expected, atol=1e-12)

    def test_inverse_and_compose(self):
        T = se3.se3_exp(random_twists(16, torch.float64, 1.0))
        eye = torch.eye(4, dtype=torch.float64).expand(16, 4, 4)
        assert torch.allclose(se3.compose(T, se3.inverse(T)), eye, atol=1e-12)
        assert torch.allclose(se3.inverse(T), torch.linalg.inv(T), atol=1e-12)

    def test_left_update_moves_in_world_frame(self):
        # A pure world translation twist moves the camera centre by exactly rho.
        T0 = se3.se3_exp(random_twists(1, torch.float64, 1.0))[0]
        rho = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64)
        T = se3.se3_exp(torch.cat([rho, torch.zeros(3, dtype=torch.float64)])) @ T0
        assert torch.allclose(T[:3, 3] - T0[:3, 3], rho, atol=1e-12)


class TestGradients:
    @pytest.mark.parametrize("scale", [0.0, 1e-8, 1e-4, 0.5])
    def test_gradcheck_exp(self, scale):
        xi = (
            random_twists(3, torch.float64, scale, seed=1)
            if scale
            else torch.zeros(3, 6, dtype=torch.float64)
        )
        xi.requires_grad_(True)
        assert torch.autograd.gradcheck(se3.se3_exp, (xi,))

    @pytest.mark.parametrize("scale", [1e-4, 0.5])
    def test_gradcheck_log(self, scale):
        T = se3.se3_exp(random_twists(3, torch.float64, scale, seed=2)).requires_grad_(True)
        assert torch.autograd.gradcheck(lambda m: se3.se3_log(m), (T,), atol=1e-6)

    def test_gradient_finite_at_zero_float32(self):
        xi = torch.zeros(6, requires_grad=True)
        se3.se3_exp(xi).sum().backward()
        assert torch.isfinite(xi.grad).all()

    def test_gradient_at_zero_is_generator(self):
        # d exp(xi)/d phi_z at 0 is the generator hat(e_z).
        xi = torch.zeros(6, dtype=torch.float64, requires_grad=True)
        J = torch.autograd.functional.jacobian(se3.se3_exp, xi)
        assert torch.allclose(J[:3, :3, 5], se3.hat(torch.tensor([0.0, 0, 1], dtype=torch.float64)))
        assert torch.allclose(J[:3, 3, 0], torch.tensor([1.0, 0, 0], dtype=torch.float64))


class TestErrors:
    def test_rotation_error_known_angle(self):
        axis = torch.tensor([0.0, 1.0, 0.0])
        for deg in [0.0, 1e-3, 5.0, 90.0, 179.0]:
            R = se3.axis_angle_to_matrix(axis, torch.tensor(math.radians(deg)))
            assert abs(se3.rotation_error_deg(R, torch.eye(3)).item() - deg) < 2e-3

    def test_translation_error(self):
        a, b = torch.eye(4), torch.eye(4)
        b[:3, 3] = torch.tensor([3.0, 4.0, 0.0])
        assert se3.translation_error(a, b).item() == pytest.approx(5.0)

    def test_mixed_dtypes_are_computed_in_the_wider_one(self):
        """A float64 estimate against a float32 camera (the README's snippet): no dtype error, and the
        result equals the all-float64 one up to the float32 input's rounding."""
        est = se3.se3_exp(torch.tensor([0.3, -0.2, 0.1, 0.2, -0.1, 0.3], dtype=torch.float64))
        gt32 = se3.se3_exp(torch.tensor([0.1, 0.0, -0.2, 0.0, 0.25, 0.1])).float()
        gt64 = gt32.double()
        for a, b in ((est, gt32), (gt32, est)):
            rot, trans = se3.rotation_error_deg(a, b), se3.translation_error(a, b)
            assert rot.dtype == trans.dtype == torch.float64
            assert rot.item() == pytest.approx(se3.rotation_error_deg(est, gt64).item(), rel=1e-12)
            assert trans.item() == pytest.approx(se3.translation_error(est, gt64).item(), rel=1e-12)
            assert rot.item() > 10.0 and trans.item() > 0.1
        # Broadcasting across dtypes: [2, 4, 4] float32 against one [4, 4] float64.
        batch = torch.stack([gt32, torch.eye(4)])
        assert se3.rotation_error_deg(batch, est).shape == (2,)
        assert se3.translation_error(batch, est).shape == (2,)


@pytest.mark.parametrize("scale", [0.0, 1e-6, 1e-2, 0.5, 2.0])
def test_series_exp_equals_the_closed_form_values_and_gradients(scale):
    """The scaling-and-squaring exponential (the pose step's: few, batched ops) against the closed form, from
    the zero twist to rotations of several radians, in values and gradients (float64), and to float32
    rounding in float32."""
    g = torch.Generator().manual_seed(int(scale * 1000))
    xi = (scale * torch.randn(20, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
    w = torch.randn(20, 4, 4, generator=g, dtype=torch.float64)
    T, T_ref = se3.se3_exp_series(xi), se3.se3_exp(xi)
    torch.testing.assert_close(T, T_ref, atol=1e-9, rtol=0)  # truncation: ~1e-11 at 7 rad
    (grad,) = torch.autograd.grad((T * w).sum(), xi)
    (grad_ref,) = torch.autograd.grad((T_ref * w).sum(), xi)
    torch.testing.assert_close(grad, grad_ref, atol=1e-8, rtol=0)
    torch.testing.assert_close(
        se3.se3_exp_series(xi.detach().float()), T_ref.detach().float(), atol=2e-6, rtol=0
    )
    assert torch.equal(T[:, 3].detach(), torch.tensor([0.0, 0, 0, 1], dtype=T.dtype).expand(20, 4))


def test_series_exp_gradcheck_and_batch_shape():
    xi = (0.7 * torch.randn(3, 2, 6, dtype=torch.float64)).requires_grad_(True)
    assert se3.se3_exp_series(xi).shape == (3, 2, 4, 4)
    assert torch.autograd.gradcheck(se3.se3_exp_series, (xi,))
