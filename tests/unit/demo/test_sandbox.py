"""A demo run's topics are all its own: none it creates (and deletes at the end) is shared."""

from __future__ import annotations

from pathlib import Path

from workers.core.settings import TopicSettings, load_settings
from workers.demo.sandbox import Sandbox
from workers.kafka.topics import topic_specs


def test_every_topic_a_run_creates_is_prefixed() -> None:
    sandbox = Sandbox(load_settings(), "1a2b3c4d", Path("var/demo/bundles/none"))
    names = {
        k.removeprefix("PRODCAT_TOPICS_").lower(): v
        for k, v in sandbox.env.items()
        if k.startswith("PRODCAT_TOPICS_")
    }
    assert set(names) == set(TopicSettings.model_fields)  # topics added later included
    specs = topic_specs(load_settings().with_overrides(topics=names))
    assert specs and all(s.name.startswith("demo-1a2b3c4d.") for s in specs)
    assert names["product_created"] == "demo-1a2b3c4d.product.created"
    assert names["dead_letter"] == "demo-1a2b3c4d.dead-letter"
    assert names["models"] == "demo-1a2b3c4d.models"
