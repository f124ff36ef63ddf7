"""The two sheets validated like the config (avvp/sheets.py), and the registries their choices come from.

Each typo of a copy of config/variants.yaml or config/tables.yaml is one line naming the file, the row and the
key, exit 1, nothing written, before anything trains (the time it takes: bench/bench_sheet_errors.py).
"""

from __future__ import annotations

import jsonschema
import numpy as np
import pytest
import yaml

from avvp import models, schema, sheets, variants
from avvp.cli import main
from avvp.errors import AvvpError
from avvp.evaluation.gatings import binarize
from avvp.registry import EXTRA_LOSSES, GATINGS, LABEL_SOURCES, SELECTION_RULES, Registry

REGISTRIES = [models.BACKBONES, models.FRAME_HEADS, EXTRA_LOSSES, LABEL_SOURCES, GATINGS, SELECTION_RULES]


# ------------------------------------------------------------------------------------------- registries

def test_a_registry_registers_gets_and_names_its_entries():
    reg = Registry("widget")

    @reg.register("round", size=3)
    def round_widget():
        return "o"

    reg.register("lazy", "avvp.paths:slug")
    assert reg.names() == ["round", "lazy"] and "round" in reg and "square" not in reg
    assert reg.get("round") is round_widget and reg.meta("round") == {"size": 3}
    assert reg.get("lazy")("MA* + CM-Co") == "ma_star_cm_co"          # imported on first get
    with pytest.raises(AvvpError, match=r"^unknown widget 'square' \(known: round, lazy\)$"):
        reg.get("square")
    with pytest.raises(AvvpError, match="widget 'round' is registered twice"):
        reg.register("round", round_widget)
    reg.unregister("lazy")
    assert reg.names() == ["round"]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.plural)
def test_every_entry_of_every_registry_resolves(registry):
    for name in registry.names():
        assert registry.get(name) is not None, name


@pytest.mark.parametrize("registry", [models.BACKBONES, models.FRAME_HEADS], ids=lambda r: r.plural)
def test_every_declared_switch_is_a_schema_whose_default_it_accepts(registry):
    for name in registry.names():
        for switch, fragment in registry.meta(name).get("switches", {}).items():
            jsonschema.Draft202012Validator.check_schema(fragment)
            jsonschema.validate(fragment["default"], fragment)


@pytest.mark.parametrize("registry", [EXTRA_LOSSES], ids=lambda r: r.plural)
def test_every_loss_declares_the_settings_its_recipes_give_it(registry):
    recipes = sheets.variants().recipes
    for name in registry.names():
        settings = registry.meta(name)["settings"]
        for recipe in recipes.values():
            if name in recipe:
                jsonschema.validate(recipe[name], settings)


@pytest.mark.parametrize("gating", GATINGS.names())
def test_every_gating_gives_binary_predictions_of_the_protocols_shape(gating):
    rng = np.random.default_rng(0)
    probs = {"frame_prob": rng.random((3, 10, 2, 25)), **{k: rng.random((3, 25)) for k in
                                                          ("global_prob", "a_prob", "v_prob")}}
    audio, visual = binarize(probs, gating)
    assert audio.shape == visual.shape == (3, 25, 10) and audio.dtype == np.uint8
    assert set(np.unique(audio)) <= {0, 1} and GATINGS.get(gating).description


@pytest.mark.parametrize("rule", SELECTION_RULES.names())
def test_every_selection_rule_names_a_split_and_a_metric_of_the_ten_numbers(rule):
    entry = SELECTION_RULES.get(rule)
    assert entry.split in (None, "val", "test")
    if entry.split is not None:
        scores = {"segment": dict.fromkeys(("audio", "visual", "audio_visual", "type_av", "event_av"), 1.0),
                  "event": dict.fromkeys(("audio", "visual", "audio_visual", "type_av", "event_av"), 2.0)}
        # One of the ten numbers, or (CMPAE's val_avg_all) their mean.
        assert entry.metric(scores) in (1.0, 2.0, 1.5) and str(entry.metric)


def test_registry_choices_fill_the_schema_when_it_is_used():
    fragment = {"type": "string", "x-choices": "gatings"}
    known = sorted(GATINGS.names())
    assert schema.resolved(fragment)["enum"] == known
    GATINGS.register("toy_gate", lambda probs: (None, None), description="a toy")
    try:
        assert schema.resolved(fragment)["enum"] == sorted(known + ["toy_gate"])
    finally:
        GATINGS.unregister("toy_gate")


def test_model_specs_get_their_backbones_and_heads_switches_only():
    assert models.normalise({"backbone": "ave"}) == {"backbone": "ave", "head": "mmil", "dropout": 0.1}
    assert models.normalise({"head": "cmco"}) == {"backbone": "han", "layers": 1, "stacking": "chained",
                                                  "head": "cmco", "cmco_mode": "cm", "dropout": 0.1}
    with pytest.raises(AvvpError, match=r"model spec: unknown key 'cmco_mode' \(known: backbone, head, visual_dropout, "
                                        r"dropout, layers, stacking, cross_attention\)"):
        models.normalise({"cmco_mode": "av"})


# -------------------------------------------------------------------------------------------- the sheets

def test_the_papers_sheets_are_valid_and_ma_step_1_is_a_row():
    assert "MA step 1" in variants.names() and {"table1", "table2", "table3", "table4"} <= set(sheets.tables())
    step1 = variants.get("MA step 1")
    assert step1.losses == ("ma_contrast",) and step1.labels == "weak" and step1.recipe_name == "han"
    assert (step1.recipe["epochs"], step1.recipe["select"]) == (12, "last")
    assert {k: v for k, v in step1.recipe.items() if k not in ("epochs", "select", "released_select")} == \
        {k: v for k, v in variants.get("HAN").recipe.items() if k not in ("epochs", "select", "released_select")}


def test_table5_split_in_two_is_table5_row_for_row():
    """bench/table5_split.yaml lets a CPU machine build table5 without its MM-Pyramid rows; its rows must stay
    table5's (same runs, gating and published numbers), or docs/results/table5.md reads another table."""
    tables = sheets.tables(["config/tables.yaml", "bench/table5_split.yaml"])
    whole = {row["variant"]: row for row in tables["table5"]["rows"]}
    split = tables["table5_core"]["rows"] + tables["table5_mmpyr"]["rows"]
    assert {row["variant"] for row in split} == set(whole)
    assert all(row == whole[row["variant"]] for row in split)
    assert all(tables[name][key] == tables["table5"][key] for name in ("table5_core", "table5_mmpyr")
               for key in ("columns", "tune_thresholds", "source"))


def _variants_typo(path, edit):
    data = yaml.safe_load(sheets.VARIANTS_FILE.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _tables_typo(path, edit):
    data = yaml.safe_load(sheets.TABLES_FILE.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _row(name):
    return lambda data: data["variants"][name]


VARIANT_TYPOS = [
    (lambda d: d["variants"]["MA"].update(gating="hann"),
     f"variant 'MA': gating: 'hann' is not one of {sorted(GATINGS.names())} (gatings)"),
    (lambda d: d["variants"]["MA"].update(labels="wek"),
     f"variant 'MA': labels: 'wek' is not one of {sorted(LABEL_SOURCES.names())} (label sources)"),
    (lambda d: d["variants"]["HAN + Ours"].update(losses=["cmss"]),
     f"variant 'HAN + Ours': losses.0: 'cmss' is not one of {sorted(EXTRA_LOSSES.names())} (losses)"),
    (lambda d: d["variants"]["HAN + Ours"]["model"].update(head="cmc0"),
     f"variant 'HAN + Ours': model.head: 'cmc0' is not one of {sorted(models.FRAME_HEADS.names())} (frame heads)"),
    (lambda d: d["variants"]["HAN"]["model"].update(backbone="hann"),
     f"variant 'HAN': model.backbone: 'hann' is not one of {sorted(models.BACKBONES.names())} (backbones)"),
    (lambda d: d["variants"]["HAN + Ours"].update(recipe="ourz"),
     f"variant 'HAN + Ours': recipe: unknown recipe 'ourz' (known: {', '.join(sheets.variants().recipes)})"),
    (lambda d: d["variants"]["HAN"].update(gatng="ma"),
     "variant 'HAN': unknown key 'gatng' (known: runs_of, model, recipe, recipe_overrides, labels, losses, gating, "
     "why)"),
    (lambda d: d["variants"]["AVE"]["model"].update(layers=2),
     "variant 'AVE': model: unknown key 'layers' (known: backbone, head, visual_dropout)"),
    (lambda d: d["variants"]["HAN"]["model"].update(layers=4),
     "variant 'HAN': model.layers: 4 is greater than the maximum of 3"),
    (lambda d: d["recipes"]["ours"].update(mil_target="audio_visual"),
     "recipe 'ours': mil_target: 'audio_visual' is not one of ['weak', 'union', 'audio']"),
    (lambda d: d["recipes"]["ours"]["cms"].update(tua=1.0),
     "recipe 'ours': cms: unknown key 'tua' (known: weight, tau, start_epoch)"),
    (lambda d: d["recipes"]["ours"].update(released_select="test"),
     f"recipe 'ours': released_select: 'test' is not one of {sorted(SELECTION_RULES.names())} (selection rules)"),
    (lambda d: d["variants"]["HAN"].update(losses=["cms"]),
     "variant 'HAN': losses: loss 'cms' needs the recipe key 'cms' (its settings) in recipe 'han' or the row's "
     "recipe_overrides"),
]


@pytest.mark.parametrize("edit, message", VARIANT_TYPOS, ids=[m.split(": ", 1)[1][:40] for _, m in VARIANT_TYPOS])
def test_a_typo_in_the_variants_sheet_is_one_line_and_nothing_is_written(tmp_path, capsys, edit, message):
    bad = tmp_path / "variants.yaml"
    _variants_typo(bad, edit)
    out = tmp_path / "run"
    assert main(["train", "--variant", "HAN", "--data", str(tmp_path / "no_data"), "--out", str(out),
                 "--variants-file", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err == f"avvp train: error: {bad}: {message}\n"
    assert not out.exists()


TABLE_TYPOS = [
    (lambda d: d["tables"]["table1"]["rows"].append({"variant": "HAN + Magic", "base": None}),
     "table 'table1' row 9 ('HAN + Magic'): variant: unknown variant 'HAN + Magic' (not in {variants})"),
    (lambda d: d["tables"]["table1"]["rows"][2].update(base="AVSDM"),
     "table 'table1' row 3 ('AVSDN + Ours'): base: 'AVSDM' is not a row of this table"),
    (lambda d: d["tables"]["table2"]["rows"][0].update(publshed=None),
     "table 'table2' row 1 ('HAN'): unknown key 'publshed' (known: variant, label, base, published, "
     "published_source, gflops, params)"),
    (lambda d: d["tables"]["table4"]["rows"][0]["published"].update(event={"audio": 51.3}),
     "table 'table4' row 1 ('HAN'): published: 'event.audio' is not a column of this table"),
    (lambda d: d["tables"]["table3"].update(columns=["segment.audio", "segment.vsual"]),
     "table 'table3': columns.1: 'segment.vsual' is not one of"),
]


@pytest.mark.parametrize("edit, message", TABLE_TYPOS, ids=[m.split(": ", 1)[1][:40] for _, m in TABLE_TYPOS])
def test_a_typo_in_the_tables_sheet_is_one_line_and_nothing_is_written(tmp_path, capsys, edit, message):
    bad = tmp_path / "tables.yaml"
    _tables_typo(bad, edit)
    out = tmp_path / "out" / "table1.md"
    assert main(["table", "--table", "table1", "--tables", str(bad), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"avvp table: error: {bad}: {message.format(variants=sheets.VARIANTS_FILE)}")
    assert err.count("\n") == 1 and not out.parent.exists()


def test_an_unknown_table_is_one_line_listing_the_tables(tmp_path, capsys):
    assert main(["table", "--table", "table9", "--out", str(tmp_path / "t.md")]) == 1
    every = ", ".join(sheets.tables())           # the tables file's own list (a new table must not break this)
    assert every.startswith("table1, table2, table3, table4, table5")
    assert f"no table 'table9' (has: {every})" in capsys.readouterr().err


def test_user_sheets_add_rows_recipes_and_tables_and_a_repeated_name_names_both_files(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump({
        "recipes": {"short": {**sheets.variants().recipes["han"], "epochs": 2}},
        "variants": {"HAN short": {"model": {"backbone": "han", "head": "mmil"}, "recipe": "short"}}}))
    both = [str(sheets.VARIANTS_FILE), str(mine)]
    row = variants.get("HAN short", both)
    assert row.recipe["epochs"] == 2 and row.labels == "weak" and row.gating == "han"
    assert "HAN" in variants.names(both) and "HAN short" not in variants.names()
    tables = tmp_path / "tables.yaml"
    tables.write_text(yaml.safe_dump({"tables": {"mine": {"title": "Mine", "source": "ours", "columns":
                                                          ["segment.audio"], "rows": [
                                                              {"variant": "HAN", "base": None},
                                                              {"variant": "HAN short", "base": "HAN"}]}}}))
    spec = sheets.table("mine", [sheets.TABLES_FILE, tables], both)
    assert [r["variant"] for r in spec["rows"]] == ["HAN", "HAN short"] and spec["source_paper"] == ""
    assert "table2" in sheets.tables([sheets.TABLES_FILE, tables], both)
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump({"variants": {"HAN": {"model": {"backbone": "han", "head": "mmil"},
                                                          "recipe": "han"}}}))
    with pytest.raises(AvvpError, match=f"^{again}: variant 'HAN' is already defined in {sheets.VARIANTS_FILE}$"):
        variants.names([sheets.VARIANTS_FILE, again])


def test_a_changed_file_is_read_again(tmp_path):
    path = tmp_path / "variants.yaml"
    _variants_typo(path, lambda d: None)
    assert variants.get("HAN", path).recipe["epochs"] == 40
    _variants_typo(path, lambda d: d["recipes"]["han"].update(epochs=7))
    assert variants.get("HAN", path).recipe["epochs"] == 7
