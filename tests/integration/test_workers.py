"""Several worker processes behind one port: metrics still add up."""

from __future__ import annotations

import httpx
import openai

from tests.integration.gateway import add_persona, start_gateway, start_upstream, write_config


def test_metrics_cover_every_worker(tmp_path):
    up = start_upstream("multi-sim")
    (tmp_path / "allow.cedar").write_text('@id("all")\n@title("All")\npermit (principal, action, resource);\n')
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", [{"name": "up", "base_url": up.url + "/v1"}],
                          [{"name": "m", "backends": ["up"]}], policy={"files": ["allow.cedar"]})
    key = add_persona(config, "dora", "multi")
    gw = start_gateway(config, workers=2)
    try:
        c = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
        for _ in range(20):  # fresh connections spread over both workers
            c.with_options(http_client=httpx.Client()).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}])
        total = 0.0
        for line in httpx.get(gw.url + "/metrics").text.splitlines():
            if line.startswith('clearance_requests_total{endpoint="chat_completions",status="200"}'):
                total += float(line.rsplit(" ", 1)[1])
        assert total == 20
    finally:
        gw.stop()
        up.stop()
