"""Labels and specs (`gradest.labels`): one rule for option values, both ways."""
from __future__ import annotations

import pytest

import gradest
from gradest.labels import make_label, parse_label, parse_spec, parse_value


@pytest.mark.parametrize("name, options", [
    ("reinforce", {"baseline": "loo"}), ("gumbel_softmax", {"hard": True, "temperature": 0.5}),
    ("x", {"a": 0.5, "b": 3, "c": "none", "d": False, "e": None, "f": 1e-3}), ("pathwise", {}),
    ("bernoulli_vae", {"hidden": [200, 200], "num_latents": 200}), ("vae", {"hidden": []}),
])
def test_labels_round_trip(name, options):
    assert parse_label(make_label(name, options)) == (name, options)
    if options:  # a spec typed on the command line reads the same values
        spec = f"{name}:" + ",".join(f"{k}={make_label('', {k: v})[1:-1].split('=', 1)[1]}" for k, v in options.items())
        assert parse_spec(spec) == (name, options)


def test_one_value_rule():
    assert [parse_value(t) for t in ("1", "0.5", "1e-3", "true", "True", "false", "None", "null", "[1,2]", "loo")] == \
        [1, 0.5, 1e-3, True, True, False, None, None, [1, 2], "loo"]


def test_labels_are_the_estimators_own():
    est = gradest.get_estimator("gumbel_softmax", temperature=0.5, hard=False)
    assert est.label == make_label("gumbel_softmax", {"temperature": 0.5, "hard": False}) == \
        "gumbel_softmax[hard=False,temperature=0.5]"
    assert parse_spec("reinforce") == ("reinforce", None)
    assert parse_spec("reinforce[baseline=loo]") == ("reinforce", {"baseline": "loo"})


@pytest.mark.parametrize("bad, message", [
    ("", "non-empty"), ("reinforce[baseline=loo", "options go in brackets"), ("reinforce[baseline]", "key=value"),
])
def test_malformed_labels_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        parse_label(bad)
    with pytest.raises(ValueError, match="key=value"):
        parse_spec("reinforce:loo")


@pytest.mark.parametrize("text", ["reinforce:baseline=loo,baseline=none", "reinforce[baseline=loo,baseline=none]"])
def test_a_repeated_option_key_is_refused(text):
    with pytest.raises(ValueError, match="option 'baseline' given twice"):
        parse_spec(text)
