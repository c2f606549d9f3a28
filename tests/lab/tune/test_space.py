"""tune's search spaces: named ones from the registries, YAML files, cells and their errors."""

from __future__ import annotations

import pytest
import yaml

from steadygan.errors import ConfigError
from steadygan.lab.tune.space import Cell, load_space, named_spaces, parse_space


def test_named_spaces_come_from_the_registries_at_three_strengths():
    spaces = named_spaces()
    assert spaces["penalties"]["methods"]["r1"] == {"gamma": [1.0, 10.0, 100.0]}  # R1's paper weight 10
    assert spaces["penalties"]["methods"]["seed-param"] == {"lambda": [0.1, 1.0, 10.0]}
    assert spaces["clippers"]["methods"]["clip-norm"] == {"max_norm": [0.1, 1.0, 10.0]}
    documents = load_space("documents")
    assert [c.spec for c in documents.cells()] == [
        "baseline", "seed-param:lambda=0.1", "seed-param:lambda=1", "seed-param:lambda=10", "clip-value:eps=0.001",
        "clip-value:eps=0.01", "clip-value:eps=0.1", "r1:gamma=0.1", "r1:gamma=1", "r1:gamma=10"]
    default = load_space("default")
    assert len(default.cells()) == 1 + 3 * len(spaces["penalties"]["methods"]) - 3 + 3 * 4  # baseline once


def test_a_space_file_with_learning_rates_and_beta1_makes_their_product(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"methods": {"baseline": {}, "r1": {"gamma": [1, 10]}}, "lr": [1e-4, 2e-4],
                                    "beta1": [0.0]}))
    space = load_space(str(path))
    cells = space.cells()
    assert len(cells) == 3 * 2 * 1 and cells[0] == Cell("baseline", 1e-4, 0.0)
    cell = Cell("r1:gamma=10", 2e-4, 0.0)
    assert cell.label == "r1:gamma=10 (lr=0.0002, beta1=0)" and cell.slug == "r1-gamma-10-lr-0.0002-beta1-0"
    assert cell.overrides(0.999, 0.99) == ["d.penalties=[{name: r1, gamma: 10}]", "d.lr=0.0002", "g.lr=0.0002",
                                           "d.betas=[0.0,0.999]", "g.betas=[0.0,0.99]"]
    assert space.cell_of(cell.params()) == cell  # Optuna's parameters name the cell back


def test_strengths_are_written_exactly_and_large_ones_parse():
    space = parse_space({"methods": {"r1": {"gamma": [1e6, 12.345678, 12.345679, 10]}}}, "s")
    specs = [c.spec for c in space.cells()]
    # :g where exact (old labels unchanged), every digit where not, and no "e+" (the spec's combinator).
    assert specs == ["r1:gamma=1e06", "r1:gamma=12.345678", "r1:gamma=12.345679", "r1:gamma=10"]
    assert [c.overrides(0.999, 0.999)[0] for c in space.cells()[:2]] == [
        "d.penalties=[{name: r1, gamma: 1e06}]", "d.penalties=[{name: r1, gamma: 12.345678}]"]
    assert len({c.slug for c in space.cells()}) == 4  # one run folder each
    assert Cell("baseline", 1.00000001e-4).label == "baseline (lr=0.000100000001)"


@pytest.mark.parametrize("data, message", [
    ([1, 2], "s: a space is a mapping with 'methods:'"),
    ({"methods": {}}, "s: a space is a mapping with 'methods:'"),
    ({"methods": {"r1": {"gamma": [1]}}, "lrs": [1]}, "s: unknown key lrs"),
    ({"methods": {"r1": {"gamma": [1], "every": [2]}}}, "s: methods.r1: expected {} or one option"),
    ({"methods": {"r1": {"gamma": []}}}, "s: methods.r1.gamma: expected a list of numbers"),
    ({"methods": {"r1": {"gamma": ["big"]}}}, "s: methods.r1.gamma: expected a list of numbers"),
    ({"methods": {"r1": {"gamma": [1, 1]}}}, "s: methods.r1.gamma: a value is listed twice"),
    ({"methods": {"r1+r2": {}}}, "s: methods.r1+r2: one method per entry"),
    ({"methods": {"r7": {}}}, "s: r7: unknown variant 'r7'"),
    ({"methods": {"r1": {"strength": [1]}}}, "s: r1:strength=1: variant 'r1'"),
    ({"methods": {"baseline": {}}, "lr": [0]}, "s: lr must be > 0"),
    ({"methods": {"baseline": {}}, "beta1": [1.0]}, "s: beta1 must be in [0, 1)"),
])
def test_a_bad_space_is_a_one_line_error_naming_the_entry(data, message):
    with pytest.raises(ConfigError) as info:
        parse_space(data, "s")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_space_that_is_neither_a_name_nor_a_file_lists_the_names():
    with pytest.raises(ConfigError, match="neither a file nor a named space .default, penalties, clippers, documents"):
        load_space("nope.yaml")
