"""A backend is one file plus its registration.

The throwaway backend here, ``torch_alt`` (the torch backend under another name, one class),
is registered in this file and nowhere else; with no other file changed it is listed, built,
and checked by the conformance kit, parity against the reference backend included. Also: the
registry's rules (names, one reference, install hints) and its entry-point group.
"""
from __future__ import annotations

import sys
import textwrap
import warnings

import numpy as np
import pytest

import gradest
from gradest import backends
from gradest.backends import (available_backends, backend_entry, backend_names, get_backend, reference_backend,
                              register_backend, unregister_backend)
from gradest.testing import check_estimator, check_task, estimator_checks

needs_torch = pytest.mark.skipif("torch" not in available_backends(), reason="needs torch")


def _torch_alt_class():
    from gradest.backends.torch import TorchBackend

    class TorchAlt(TorchBackend):
        """The torch backend under another name: a backend of its own, as a plugin would write it."""

        name = "torch_alt"

    return TorchAlt


@pytest.fixture
def torch_alt():
    """``torch_alt`` registered for the test, unregistered after it."""
    register_backend("torch_alt", _torch_alt_class(), packages=("torch", "functorch"),
                     install_hint="pip install torch")
    yield "torch_alt"
    unregister_backend("torch_alt")


def test_the_built_ins_are_registered_in_preference_order():
    assert backend_names()[:2] == ["torch", "jax"]
    assert reference_backend() == "torch"
    assert backends.BACKENDS == tuple(backend_names())  # the name from before the registry
    assert set(available_backends()) <= set(backend_names())
    assert "pip install" in backend_entry("jax").install_hint


@needs_torch
def test_a_registered_backend_is_listed_built_and_checked_against_the_reference(torch_alt):
    assert backend_names()[-1] == "torch_alt" and "torch_alt" in available_backends()
    assert reference_backend() == "torch"
    B = get_backend("torch_alt", dtype="float64")
    assert (type(B).__name__, B.name, B.dtype) == ("TorchAlt", "torch_alt", "float64")
    np.testing.assert_allclose(B.to_numpy(B.softplus(B.asarray([0.0]))), [np.log(2.0)])
    # the kit's default backends are the registered, installed ones: torch_alt joins, compared with torch
    names = [n for n, _ in estimator_checks("reinforce", tasks=["binary_toy"], toy_tasks=False)]
    assert "unbiased[binary_toy-torch_alt]" in names and "parity[binary_toy-torch_alt vs torch]" in names
    # run (with the reference only, beside it, to keep the test fast)
    results = check_estimator("reinforce", options={"baseline": "loo"}, backends=("torch", "torch_alt"),
                              tasks=["binary_toy"], toy_tasks=False, num_replicates=300)
    ran = {(r.check, r.backend) for r in results}
    assert {("surrogate", "torch"), ("unbiased", "torch_alt"), ("determinism", "torch_alt"),
            ("surrogate", "torch_alt"), ("parity", "torch+torch_alt")} <= ran
    task_results = check_task("binary_toy", backends=("torch", "torch_alt"), mc_samples=500)
    assert ("parity", "torch+torch_alt") in {(r.check, r.backend) for r in task_results}


@needs_torch
def test_the_kit_fails_a_backend_that_differs_from_the_reference(torch_alt):
    from gradest.backends.torch import TorchBackend

    class Off(TorchBackend):
        name = "torch_off"

        def log_sigmoid(self, x):  # a backend bug: off by a little
            return super().log_sigmoid(x) * 1.001

    register_backend("torch_off", Off, packages=("torch",))
    try:
        with pytest.raises(AssertionError, match=r"check 'parity' failed on task 'binary_toy', backend "
                                                 r"torch_off vs torch \(float64, same NumPy noise\)"):
            check_task("binary_toy", backends=("torch", "torch_off"), mc_samples=200)
    finally:
        unregister_backend("torch_off")


def test_the_registry_refuses_what_would_be_ambiguous(torch_alt):
    register_backend("torch_alt", backend_entry("torch_alt").implementation)  # the same again: nothing
    with pytest.raises(ValueError, match="registered twice"):
        register_backend("torch_alt", "some.other.module")
    with pytest.raises(ValueError, match="cannot be the reference: 'torch' already is"):
        register_backend("another", "some.other.module", reference=True)
    with pytest.raises(ValueError, match="must be an identifier"):
        register_backend("no spaces", "some.other.module")
    with pytest.raises(ValueError, match="unknown backend 'nope'; known backends: torch, jax, torch_alt"):
        get_backend("nope")


def test_a_missing_framework_is_not_available_and_says_how_to_install_it():
    register_backend("ghost", "gradest_ghost_backend", packages=("gradest_no_such_framework",),
                     install_hint="pip install gradest-no-such-framework")
    try:
        assert "ghost" in backend_names() and "ghost" not in available_backends()
        with pytest.raises(ImportError, match=r"the ghost backend needs the gradest_no_such_framework package.*"
                                              r"Install it: pip install gradest-no-such-framework"):
            get_backend("ghost")
    finally:
        unregister_backend("ghost")


def test_a_factory_must_build_a_backend_of_its_name():
    register_backend("misnamed", lambda device, dtype: get_backend("torch", device, dtype))
    try:
        with pytest.raises(TypeError, match="not a Backend named 'misnamed'"):
            get_backend("misnamed")
    finally:
        unregister_backend("misnamed")


@needs_torch
def test_entry_points_register_lazily_and_a_broken_one_is_skipped(tmp_path, monkeypatch):
    from importlib import metadata

    (tmp_path / "gradest_ep_impl.py").write_text(textwrap.dedent("""
        from gradest.backends.torch import TorchBackend

        class TorchEp(TorchBackend):
            name = "torch_ep"

        def make_backend(device="cpu", dtype="float32", **options):
            return TorchRegistered(device=device, dtype=dtype)

        class TorchRegistered(TorchBackend):
            name = "torch_registered"
    """))
    (tmp_path / "gradest_ep_registers.py").write_text(textwrap.dedent("""
        from gradest.backends import register_backend

        register_backend("torch_registered", "gradest_ep_impl", packages=("torch",), install_hint="pip install torch")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    group = backends.ENTRY_POINT_GROUP
    points = [metadata.EntryPoint("torch_ep", "gradest_ep_impl:TorchEp", group),
              metadata.EntryPoint("whatever", "gradest_ep_registers", group),
              metadata.EntryPoint("broken", "gradest_ep_no_such_module", group)]
    monkeypatch.setattr(metadata, "entry_points", lambda group=None: [p for p in points if p.group == group])
    monkeypatch.setattr(backends, "_discovered", False)
    try:
        with pytest.warns(gradest.registry.PluginWarning, match=r"'broken' = 'gradest_ep_no_such_module'.*skipped"):
            names = backend_names()
        assert names[-2:] == ["torch_ep", "torch_registered"] and "broken" not in names
        assert backend_entry("torch_registered").source.startswith("package ")
        assert get_backend("torch_ep").name == "torch_ep" and get_backend("torch_registered").name == "torch_registered"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            backend_names()  # discovered once per process: no second warning
    finally:
        for name in ("torch_ep", "torch_registered"):
            unregister_backend(name)
        for module in ("gradest_ep_impl", "gradest_ep_registers"):
            sys.modules.pop(module, None)
