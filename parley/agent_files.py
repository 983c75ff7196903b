"""Agent files: reading ``agents/*.yaml`` into ``AgentSpec``s.

Errors name the file, the line and the field, e.g.
``agents/demo.yaml:12: tools.1.timeout_s: ...``. Imports ``agent_spec`` and
``settings`` (for ``ConfigError``) only.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from parley.agent_spec import AgentSpec
from parley.settings import ConfigError

BUILTIN_AGENTS_DIR = Path(__file__).parent / "agents"


def _line_of(node: yaml.Node, loc: tuple[int | str, ...]) -> int:
    """Walk a composed YAML node tree along a pydantic error location."""
    line = node.start_mark.line + 1
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, val in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    nxt = val
                    line = key.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                nxt = node.value[part]
                line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return line


def parse_agent(text: str, source: str) -> AgentSpec:
    """Parse and validate one agent file; errors name ``source:line: field``."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise ConfigError(
            f"{source}:{line}: invalid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(f"{source}:1: an agent file must be a mapping with at least 'name'")
    try:
        return AgentSpec.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(p for p in err["loc"] if not isinstance(p, str) or not p.startswith("function"))
        field = ".".join(str(p) for p in loc) or "(file)"
        line = _line_of(node, loc)
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ConfigError(f"{source}:{line}: {field}: {err['msg']}{more}") from None


def load_agents(extra_dir: Path | None = None) -> dict[str, AgentSpec]:
    """Built-in agents, then ``extra_dir`` (same name overrides the built-in)."""
    agents: dict[str, AgentSpec] = {}
    dirs = [BUILTIN_AGENTS_DIR] + ([extra_dir] if extra_dir else [])
    for directory in dirs:
        if not directory.is_dir():
            raise ConfigError(f"PARLEY_AGENTS_DIR: {directory} is not a directory")
        for path in sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")]):
            spec = parse_agent(path.read_text(encoding="utf-8"), str(path))
            agents[spec.name] = spec
    return agents
