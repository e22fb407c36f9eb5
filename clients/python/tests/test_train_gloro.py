"""train_gloro.py's GloroNet against the authors' LiResNet (testdata/liresnet_ref_L2W16.npz,
made with the hu23 snapshot in klasleino/gloro; see testdata/README.md): forward, K, EMMA loss
and every parameter's gradient, in float64 on the CPU. Run by clients/python/trainer_test.go
(go test ./clients/python), or: python3 -m unittest discover -s clients/python/tests
"""

import os
import sys
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

import train_gloro as tg  # noqa: E402

REF = os.path.join(HERE, "..", "..", "..", "testdata", "liresnet_ref_L2W16.npz")


def rel(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-300)


class TestAgainstTheAuthors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ref = np.load(REF)
        torch.manual_seed(0)
        m = tg.GloroNet(2, 16, classes=10, channels=3).double()
        state = {k[len("state/"):]: torch.from_numpy(cls.ref[k]) for k in cls.ref.files if k.startswith("state/")}
        m.load_state_dict(state, strict=True)  # the authors' names, every one of them
        cls.m = m
        cls.k = m.sub_lipschitz(500)
        cls.x = torch.from_numpy(cls.ref["input"])
        cls.labels = torch.from_numpy(cls.ref["label"])
        cls.logits = m(cls.x)
        cls.loss = tg.emma_loss(cls.logits, cls.labels, m.head_rows(), cls.k, float(cls.ref["eps"]))
        m.zero_grad()
        cls.loss.backward()

    def close(self, name, got, want, tol=1e-9):
        r = rel(got, want)
        self.assertLessEqual(r, tol, "%s: relative error %.2e" % (name, r))

    def test_state_names(self):
        want = sorted(k[len("state/"):] for k in self.ref.files if k.startswith("state/"))
        self.assertEqual(sorted(self.m.state_dict().keys()), want)
        for k, v in self.m.state_dict().items():
            self.assertEqual(tuple(v.shape), self.ref["state/" + k].shape, k)

    def test_lipschitz(self):
        self.close("sub_lipschitz", self.k.item(), self.ref["sub_lipschitz"])

    def test_logits(self):
        self.close("logits", self.logits.detach().numpy(), self.ref["logits"])

    def test_certificates(self):
        y = self.logits.detach()
        rows = self.m.head_rows().detach()
        pred = y.argmax(1)
        dist = (rows[pred].unsqueeze(1) - rows.unsqueeze(0)).norm(dim=-1)
        k, eps = self.k.item(), float(self.ref["eps"])
        bottom = (y + k * eps * dist).scatter(1, pred.view(-1, 1), float("-inf")).max(1)[0]
        margin = (y.gather(1, pred.view(-1, 1)) - y) / (k * dist)
        radius = margin.scatter(1, pred.view(-1, 1), float("inf")).min(1)[0]
        self.close("bottom_logit", bottom.numpy(), self.ref["bottom_logit"])
        self.close("radius", radius.numpy(), self.ref["radius"])

    def test_loss(self):
        self.close("emma_loss", self.loss.item(), self.ref["emma_loss"])

    def test_gradients(self):
        names = [k[len("grad/"):] for k in self.ref.files if k.startswith("grad/")]
        params = dict(self.m.named_parameters())
        self.assertEqual(sorted(names), sorted(params))
        for n in names:
            self.close("grad/" + n, params[n].grad.numpy(), self.ref["grad/" + n], 1e-9)

    def test_save_state_dict_round_trip(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "state_dict.npz")
            tg.save_state_dict(self.m, p)
            z = np.load(p)
            self.assertEqual(sorted(z.files), sorted(self.m.state_dict().keys()))
            np.testing.assert_array_equal(z["head.weight"], self.m.head.weight.detach().numpy())


class TestSchedule(unittest.TestCase):
    def test_learning_rate(self):
        # Warm-up, then cosine to 1e-5 of the peak, per iteration (certmix's WarmupCosine).
        self.assertAlmostEqual(tg.learning_rate(1e-3, 5, 10, 100), 5e-4)
        self.assertAlmostEqual(tg.learning_rate(1e-3, 10, 10, 100), 1e-3)
        self.assertAlmostEqual(tg.learning_rate(1e-3, 55, 10, 100), 5e-4)
        self.assertAlmostEqual(tg.learning_rate(1e-3, 100, 10, 100), 1e-8)

    def test_eps_ramp(self):
        self.assertAlmostEqual(tg.eps_ramp(1.0, 0, 10), 0.1)
        self.assertAlmostEqual(tg.eps_ramp(1.0, 5, 10), 1.5)
        self.assertAlmostEqual(tg.eps_ramp(1.0, 9, 10), 1.5)

    def test_to_input_pads_at_the_centre(self):
        img = np.full((1, 28, 28, 1), 255, np.uint8)
        x = tg.to_input(img, torch.device("cpu"))
        self.assertEqual(tuple(x.shape), (1, 1, 32, 32))
        self.assertEqual(x[0, 0, 2:30, 2:30].min().item(), 1.0)
        self.assertEqual(x.sum().item(), 28 * 28)


if __name__ == "__main__":
    unittest.main()
