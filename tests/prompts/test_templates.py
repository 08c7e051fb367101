import pytest

from padellm.errors import ConfigError
from padellm.prompts.templates import AutoregressiveTemplate, ParallelTemplate, StructuredTemplate, load_prompt, load_template, save_prompt
from padellm.prompts.labels import LabelSet, load_label_names, shipped_label_names


def test_shipped_templates_load_and_render_the_papers_format():
    template = load_template("padellm-en-v1")
    assert isinstance(template, ParallelTemplate) and template.version == 1
    prompt = template.render_count_prompt("EU rejects German call", "organization")
    assert prompt == "text:\nEU rejects German call\nentity type:\norganization\n\n<num>"
    assert template.render_count(2) + template.render_mention_prompt(1) + template.render_mention("EU") == "2\n<mention 1>EU"
    zh = load_template("padellm-zh-v1")
    assert zh.render_count_prompt("高勇", "人名").startswith("文本：\n高勇\n实体类型：\n人名")
    for name in ("autoregressive-en-v1", "autoregressive-zh-v1"):
        assert isinstance(load_template(name), AutoregressiveTemplate)


@pytest.mark.parametrize("generated,count", [("3\n", 3), ("12", 12), ("0", 0), (" 2\n", 2), ("x", None), ("", None)])
def test_parse_count(generated, count):
    assert load_template("padellm-en-v1").parse_count(generated) == count


def test_autoregressive_render_and_parse():
    template = load_template("autoregressive-en-v1")
    names = ["location", "person", "organization", "miscellaneous"]
    target = template.render_target([("organization", "EU"), ("miscellaneous", "German")])
    assert target == "organization: EU\nmiscellaneous: German\n"
    assert template.render_target([]) == "none\n"
    pairs, bad = template.parse(target + "garbage line\nperson: \n", names)
    assert pairs == [("organization", "EU"), ("miscellaneous", "German")] and bad == 2
    assert template.parse("none\n", names) == ([], 0)
    assert "entity types:\nlocation, person" in template.render_prompt("x", names[:2])


def test_structured_render_and_parse_the_papers_autoreg_struct_format():
    template = load_template("autoregressive-struct-en-v1")
    assert isinstance(template, StructuredTemplate) and template.mode == "autoregressive"
    names = ["person", "miscellaneous", "location", "organization"]
    target = template.render_target([("person", "Cuttitta"), ("miscellaneous", "1995 World Cup"), ("location", "Italy")],
                                    names)
    assert target == "((person): (Cuttitta), (miscellaneous): (1995 World Cup), (location): (Italy), (organization): (NULL))"
    both = template.render_target([("person", "A"), ("location", "Tyco (UK)"), ("person", "B")], names)
    assert template.parse(both, names) == ([("person", "A"), ("person", "B"), ("location", "Tyco (UK)")], 0)
    # cut short: what was complete is kept; an entry without a parenthesised mention is counted
    assert template.parse("((person): (A), (location): ", names) == ([("person", "A")], 1)
    assert template.parse(template.render_target([], names), names) == ([], 0)
    with pytest.raises(ConfigError, match="'mode' must be parallel, or autoregressive with 'format' one of lines, structured; "
                                          "got mode 'autoregressive' format 'table'"):
        from padellm.prompts.templates import template_from_dict
        template_from_dict({"mode": "autoregressive", "format": "table"}, "x.yaml")


def test_bad_templates_list_every_problem():
    with pytest.raises(ConfigError) as info:
        ParallelTemplate("t", 1, "en", "{label} {text}", "{n}", "<m>", "{mention} {extra}")
    text = str(info.value)
    assert "count_target" in text and "mention_prompt" in text and "mention_target" in text
    with pytest.raises(ConfigError, match=r"\{text\} once, then \{label\} once"):
        ParallelTemplate("t", 1, "en", "{label} {text}", "{count}", "<{k}>", "{mention}")
    with pytest.raises(ConfigError, match="must end with a newline"):
        AutoregressiveTemplate("t", 1, "en", "{text}{labels}", "{label}: {mention}", "none\n")
    with pytest.raises(ConfigError, match="one of .*padellm-en-v1.*got 'padellm-xx'"):
        load_template("padellm-xx")


def test_label_sets():
    names = load_label_names("conll2003")
    assert names == {"PER": "person", "ORG": "organization", "LOC": "location", "MISC": "miscellaneous"}
    label_set = LabelSet.for_labels(["PER", "LOC", "X"], names)
    assert label_set.labels == ("LOC", "PER", "X") and label_set.names == ("location", "person", "X")
    assert label_set.label("person") == "PER" and label_set.name("X") == "X"
    with pytest.raises(ConfigError) as info:
        LabelSet(("A", "B", "B"), ("a", "a", " "))
    assert "duplicate labels: ['B']" in str(info.value) and "duplicate label names: ['a']" in str(info.value)
    with pytest.raises(ConfigError, match="got 'nope'"):
        load_label_names("nope")


def test_shipped_label_names_by_dataset_name_or_folder(tmp_path):
    assert shipped_label_names("resume_zh") == "resume_zh"
    assert shipped_label_names("../shared/data/genia") == "genia"
    assert shipped_label_names(tmp_path / "my_corpus") == ""


def test_prompt_travels_with_the_adapter(tmp_path):
    template, label_set = load_template("padellm-zh-v1"), LabelSet.for_labels(["NAME"], {"NAME": "人名"})
    save_prompt(tmp_path, template, label_set)
    assert load_prompt(tmp_path) == (template, label_set)
    (tmp_path / "labels.yaml").unlink()
    with pytest.raises(ConfigError, match="lacks labels.yaml"):
        load_prompt(tmp_path)
