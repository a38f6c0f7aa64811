import pytest

from kernel.injection import InjectionError, requested

BASIC = {"hparams", "reporter"}


def test_asks_only_for_what_it_names():
    def train(reporter, hparams): ...
    assert requested(train, BASIC) == ["reporter", "hparams"]

    def bare(): ...
    assert requested(bare, BASIC) == []


def test_unknown_name_lists_the_allowed_ones():
    def train(hparams, optimizer_state): ...
    with pytest.raises(InjectionError) as info:
        requested(train, BASIC)
    msg = str(info.value)
    assert "'optimizer_state'" in msg and "hparams, reporter, dataset, model, strategy" in msg


def test_known_name_this_context_lacks_says_so():
    def train(hparams, dataset): ...
    with pytest.raises(InjectionError, match="'dataset'.*does not provide.*hparams, reporter"):
        requested(train, BASIC, "HyperparameterSearch")


def test_defaults_and_varargs_are_left_alone():
    def train(hparams, extra=3, *args, **kwargs): ...
    assert requested(train, BASIC) == ["hparams"]


def test_positional_only_is_refused():
    def train(hparams, /): ...
    with pytest.raises(InjectionError, match="positional-only"):
        requested(train, BASIC)


def test_not_callable():
    with pytest.raises(InjectionError, match="callable"):
        requested(42, BASIC)
