import pytest

from padellm.errors import InvalidRequestError
from padellm.integrations.ray import NERPredictor

TEXTS = ["Peter said", "EU", "Peter Blackburn", "nothing here"]


@pytest.fixture(scope="module")
def predictor(tiny_adapter):
    return NERPredictor(str(tiny_adapter[0]), backend="transformers", decode={"max_count": 2})


def test_the_predictor_adds_the_entities_of_each_row_and_keeps_the_other_columns(predictor):
    out = predictor({"text": TEXTS, "id": [1, 2, 3, 4]})
    assert out["id"] == [1, 2, 3, 4] and out["text"] == TEXTS
    expected = predictor.ner.batch(TEXTS)
    assert [[(e["start"], e["end"], e["label"]) for e in row] for row in out["entities"]] == \
        [[(e.start, e.end, e.label) for e in found] for found in expected]
    for text, row in zip(TEXTS, out["entities"]):
        assert all(text[e["start"] : e["end"]] == e["text"] for e in row)
    with pytest.raises(InvalidRequestError, match=r"text: no such column in the batch; pass text_column=\.\.\. in "
                                                  r"fn_constructor_kwargs \(got \[.sentence.\]\)"):
        NERPredictor.__call__(predictor, {"sentence": TEXTS})


def test_ray_data_map_batches_gives_the_spans_of_load_batch(tiny_adapter, predictor):
    from conftest import require

    ray = require("ray")
    ray.init(num_cpus=1, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    try:
        dataset = ray.data.from_items([{"text": t} for t in TEXTS])
        rows = dataset.map_batches(NERPredictor, fn_constructor_kwargs={"adapter": str(tiny_adapter[0]),
                                                                        "backend": "transformers",
                                                                        "decode": {"max_count": 2}},
                                   concurrency=1, batch_size=2, batch_format="pandas").take_all()
    finally:
        ray.shutdown()
    found = {row["text"]: [(int(e["start"]), int(e["end"]), e["label"]) for e in row["entities"]] for row in rows}
    expected = predictor.ner.batch(TEXTS)
    assert found == {t: [(e.start, e.end, e.label) for e in es] for t, es in zip(TEXTS, expected)}
