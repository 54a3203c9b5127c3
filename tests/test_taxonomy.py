import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import FIXTURES
from pydantic import ValidationError

from annotator.cli import main
from annotator.config import resource_path
from annotator.errors import TaxonomyError
from annotator.labeling.response_models import build_batch_model, build_response_model
from annotator.taxonomy import load_taxonomy

SHIPPED = resource_path("schemas") / "taxonomy-v1.yaml"


def reference_ids() -> dict[str, set[str]]:
    """Label ids per section of the reference taxonomy-v1.md."""
    text = (FIXTURES / "taxonomy-v1.md").read_text()
    sections = re.split(r"^### ", text, flags=re.M)
    out = {}
    for sec in sections[1:]:
        name = sec.split()[0]
        out[name] = set(re.findall(r"^\| ([a-z_]+) \|", sec, re.M)) - {"id", "dimension"}
    return out


def test_shipped_taxonomy_keeps_every_reference_label_id():
    tax = load_taxonomy()
    ref = reference_ids()
    for dim in ("background", "task_type", "solving_operation", "output_constraint"):
        ids = set(tax.dimension("eval", dim).label_ids)
        assert ids == ref[dim] - {"domain", "genre", "operation", "content_form"}
    genre = {"textbook_exposition", "worked_solution", "exercise_set", "qa_forum", "encyclopedia", "news_report",
             "narrative_fiction", "source_code", "academic_paper", "reference_data", "dialogue_transcript",
             "boilerplate_spam"}
    assert set(tax.dimension("corpus", "genre").label_ids) == genre
    assert set(tax.dimension("corpus", "domain").label_ids) == (ref["background"] - {"none"}) | {"other"}
    assert tax.dimension("corpus", "operation").label_ids == tax.dimension("eval", "solving_operation").label_ids
    assert set(tax.dimension("corpus", "content_form").label_ids) == {
        "prose", "math_notation", "code", "tabular_structured", "list_outline", "mixed"}


def test_every_label_is_described_with_examples_and_cardinalities_declared():
    tax = load_taxonomy()
    for kind in ("eval", "corpus"):
        for dim in tax.dimensions(kind):
            for label in dim.labels:
                assert len(label.description) > 3 and len(label.examples) >= 2
    assert tax.dimension("eval", "solving_operation").cardinality == "ordered_list"
    assert (tax.dimension("eval", "solving_operation").min, tax.dimension("eval", "solving_operation").max) == (1, 3)
    assert tax.dimension("corpus", "operation").cardinality == "list"
    assert (tax.dimension("corpus", "operation").min, tax.dimension("corpus", "operation").max) == (0, 3)
    assert tax.dimension("eval", "background").cardinality == "one"
    assert {r.eval for r in tax.mapping} == {"background", "task_type", "solving_operation", "output_constraint"}


def test_version_is_name_and_content_hash(tmp_path):
    v1 = load_taxonomy().version
    assert v1.startswith("slice-taxonomy-v1@") and len(v1.split("@")[1]) == 12
    copy = tmp_path / "t.yaml"
    copy.write_text(SHIPPED.read_text() + "\n# edited\n")
    assert load_taxonomy(copy).version != v1


def _broken(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(SHIPPED.read_text())
    edit(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["kinds"]["eval"]["dimensions"][0].update(colour="red"), "kinds.eval.dimensions.0.colour"),
    (lambda d: d["kinds"]["eval"]["dimensions"][1]["labels"].append(
        dict(d["kinds"]["eval"]["dimensions"][1]["labels"][0])), "duplicate label ids ['knowledge_recall']"),
    (lambda d: d["kinds"]["eval"]["dimensions"][3].update(labels=[]),
     "kinds.eval.dimensions.3 (output_constraint).labels: empty"),
    (lambda d: d["mapping"][2]["pairs"][0].update(to=["worked_solution", "poetry"]),
     "mapping.2.pairs.0.to: unknown genre label 'poetry'"),
    (lambda d: d["mapping"][2]["pairs"][0].update({"from": "juggling"}),
     "mapping.2.pairs.0.from: unknown task_type label 'juggling'"),
    (lambda d: d["kinds"]["eval"]["dimensions"][0]["labels"][0].update(examples=["only one"]), "examples"),
])
def test_validation_errors_name_file_and_path(tmp_path, edit, expected):
    path = _broken(tmp_path, edit)
    with pytest.raises(TaxonomyError) as err:
        load_taxonomy(path)
    assert str(path) in str(err.value)
    assert expected in str(err.value)


def test_response_model_is_built_from_label_sets():
    tax = load_taxonomy()
    model = build_response_model(tax, "eval")
    fields = list(model.model_fields)
    assert fields[0] == "rationale"
    assert fields[1:3] == ["background", "background_confidence"]
    good = {"rationale": "r", "background": "none", "background_confidence": 0.5, "task_type": "proof",
            "task_type_confidence": 1, "solving_operation": ["arithmetic", "number_theory"],
            "solving_operation_confidence": 0.2, "output_constraint": "number", "output_constraint_confidence": 0.9}
    assert model.model_validate(good).solving_operation == ["arithmetic", "number_theory"]
    # a repeated label is said once (a grammar-constrained model repeats it on every re-ask)
    assert model.model_validate({**good, "solving_operation": ["arithmetic", "geometric_reasoning", "arithmetic"]
                                 }).solving_operation == ["arithmetic", "geometric_reasoning"]
    for bad in ({"background": "astrology"}, {"solving_operation": []},
                {"solving_operation": ["arithmetic", "astrology", "arithmetic"]},
                {"solving_operation": ["arithmetic", "counting_combinatorics", "number_theory", "state_tracking"]},
                {"task_type_confidence": "high"}):
        with pytest.raises(ValidationError):
            model.model_validate({**good, **bad})
    # a confidence outside 0..1 is accepted here and clipped + flagged by the tagger (not a failed item),
    # while the schema sent to the model still asks for 0..1
    assert model.model_validate({**good, "task_type_confidence": 2.5}).task_type_confidence == 2.5
    schema = model.model_json_schema()
    assert schema["properties"]["task_type_confidence"]["maximum"] == 1.0
    assert schema["properties"]["background"]["enum"][0] == "none"
    assert model.model_json_schema() is schema  # computed once per class
    corpus = build_response_model(tax, "corpus", rationale=False, confidence=False)
    assert list(corpus.model_fields) == ["domain", "genre", "operation", "content_form"]
    assert corpus.model_validate({"domain": "other", "genre": "encyclopedia", "operation": [],
                                  "content_form": "prose"}).operation == []
    batch = build_batch_model(build_response_model(tax, "eval", with_id=True))
    assert list(batch.model_json_schema()["$defs"]["EvalLabelsEntry"]["properties"])[0] == "id"


def test_cli_show_and_validate(tmp_path):
    runner = CliRunner()
    shown = runner.invoke(main, ["taxonomy", "show", "--format", "json"])
    assert shown.exit_code == 0
    data = json.loads(shown.output)
    assert [d["id"] for d in data["kinds"]["eval"]["dimensions"]] == [
        "background", "task_type", "solving_operation", "output_constraint"]
    text = runner.invoke(main, ["taxonomy", "show"])
    assert "competition_math" in text.output and "[corpus]" in text.output
    ok = runner.invoke(main, ["taxonomy", "validate", str(SHIPPED)])
    assert ok.exit_code == 0 and "slice-taxonomy-v1@" in ok.output
    bad = _broken(tmp_path, lambda d: d.update(extra_key=1))
    res = runner.invoke(main, ["taxonomy", "validate", str(bad)])
    assert res.exit_code == 2 and "extra_key" in res.output and str(bad) in res.output


CUSTOM = """
name: tiny
kinds:
  eval:
    unit: sample
    dimensions:
      - id: difficulty
        question: how hard it is
        cardinality: one
        labels:
          - {id: easy, description: one step, examples: [2+2, capital of France]}
          - {id: hard, description: many steps, examples: [an olympiad problem, a proof]}
      - id: skills
        question: skills needed
        cardinality: ordered_list
        min: 1
        max: 2
        labels:
          - {id: math, description: mathematics, examples: [algebra, geometry]}
          - {id: reading, description: reading text, examples: [a passage, a story]}
"""


def test_user_taxonomy_with_other_dimensions(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(CUSTOM)
    tax = load_taxonomy(path)
    model = build_response_model(tax, "eval")
    assert "difficulty" in model.model_fields and "skills" in model.model_fields
    with pytest.raises(TaxonomyError, match="no kind 'corpus'"):
        tax.dimensions("corpus")
