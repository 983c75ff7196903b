"""What agent authors write: data (venue, menu, FAQ), tool labels, templates after a tool,
and load-time errors, checked through the real HTTP API with the rules brain."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import ConfigError, parse_agent
from tests.plugins.apps import AppFactory
from tests.plugins.conversation import Chat, backend  # noqa: F401
from tests.test_tools import WebhookServer, webhooks  # noqa: F401

SHOP = """
name: shop
display_name: Corner Shop
brain: rules
greeting: Hi!
tools:
  - name: order_status
    label: Look up your order
    url: {base}/orders
    parameters: {{type: object, properties: {{reason: {{type: string}}}}}}
    say: "Your order is {{status}} and arrives {{eta}}."
  - name: ping
    label: Ping the team
    url: {base}/empty
    parameters: {{type: object, properties: {{reason: {{type: string}}}}}}
  - name: nudge
    label: Nudge the kitchen
    url: {base}/empty
    requires_approval: true
    parameters: {{type: object, properties: {{reason: {{type: string}}}}}}
rules:
  - intent: order
    keywords: [order, parcel]
    tool: order_status
  - intent: ping
    keywords: [ping]
    tool: ping
  - intent: nudge
    keywords: [nudge]
    tool: nudge
faq:
  - topic: returns
    keywords: [return, refund]
    answer: "You can return anything within 30 days at {{name_of_place}}."
"""


@pytest.fixture
async def shop(make_app: AppFactory, tmp_path: Path, webhooks: WebhookServer) -> Chat:  # noqa: F811
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "shop.yaml").write_text(SHOP.format(base=webhooks.base_url), encoding="utf-8")
    async with make_app(agents_dir=agents) as app:
        client = app.client()
        await client.create_session("shop")
        yield Chat(client)
        await client.aclose()


async def test_a_webhook_result_reaches_the_user_through_the_tools_say(shop: Chat) -> None:
    turn = await shop.say("where is my parcel?")
    assert turn.ran("order_status")
    assert turn.text == "Your order is shipped and arrives tomorrow."


async def test_customers_see_the_label_not_the_tool_name(shop: Chat) -> None:
    turn = await shop.say("ping please")
    assert turn.text.startswith("Done: Ping the team.")
    assert "ping_" not in turn.text
    turn = await shop.say("nudge them")
    assert turn.approval is not None
    assert turn.approval["prompt"].startswith("Allow: Nudge the kitchen")
    turn = await shop.say("no")
    assert "I won't nudge the kitchen" in turn.text


async def test_faq_answers_come_from_the_agent_file(shop: Chat) -> None:
    turn = await shop.say("can I get a refund?")
    assert turn.text == "You can return anything within 30 days at Corner Shop."


def test_a_rule_naming_an_unknown_tool_is_a_load_time_error() -> None:
    text = "name: x\ntools: [show_menu]\nrules:\n  - intent: human\n    tool: transfer_to_human\n"
    with pytest.raises(ConfigError, match="transfer_to_human.*not in this agent's tools"):
        parse_agent(text, "x.yaml")


def test_menu_and_faq_fields_are_checked() -> None:
    with pytest.raises(ConfigError, match="menu"):
        parse_agent("name: x\nmenu: [{price: '€3'}]\n", "x.yaml")
    with pytest.raises(ConfigError, match="faq"):
        parse_agent("name: x\nfaq: [{topic: dogs}]\n", "x.yaml")


async def test_agents_list_display_names_and_tool_labels(shop: Chat) -> None:
    http = shop.client.http
    agents = (await http.get(f"{shop.client.base_url}/v1/agents")).json()
    found = next(a for a in agents if a["name"] == "shop")
    assert found["display_name"] == "Corner Shop"
    assert found["tool_labels"] == {
        "order_status": "Look up your order",
        "ping": "Ping the team",
        "nudge": "Nudge the kitchen",
    }
    demo = next(a for a in agents if a["name"] == "demo")
    assert demo["display_name"] == "Bistro" and demo["tool_labels"]["book_table"] == "Book a table"
