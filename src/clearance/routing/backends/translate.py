"""Tools, tool calls and images between the Anthropic Messages and OpenAI chat completions formats.

Used by the OpenAI-compatible backend for an Anthropic client (Claude Code against a
vLLM or Ollama model, say), and by the Anthropic backend for an OpenAI client.  What has no faithful counterpart (server tools, documents,
images inside tool results) raises ``Unsupported`` naming it, never dropped; earlier turns' thinking
blocks are left out of an OpenAI-compatible model's context, as the Messages API leaves them out.
"""

from __future__ import annotations

import json
from typing import Any

from clearance.routing.backends.base import other_format_error

# Blocks whose presence needs the translation (a plain-text conversation does not).
RICH_BLOCKS = frozenset({"tool_use", "tool_result", "image"})


def needs_translation(raw: dict[str, Any]) -> bool:
    if raw.get("tools") or raw.get("tool_choice"):
        return True
    for m in raw.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") in RICH_BLOCKS
                                             for b in content):
            return True
    return False


def tools(raw_tools: object) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(raw_tools if isinstance(raw_tools, list) else ()):
        if tool.get("type") not in (None, "custom"):
            raise other_format_error(f"tools.{i}: {tool['type']} tools")
        fn: dict[str, Any] = {"name": tool.get("name"), "parameters": tool.get("input_schema") or {"type": "object"}}
        if tool.get("description"):
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def tool_choice(choice: object) -> dict[str, Any]:
    """The OpenAI ``tool_choice`` (and ``parallel_tool_calls``) for an Anthropic ``tool_choice``."""
    if not isinstance(choice, dict):
        return {}
    kind = choice.get("type")
    mapped: Any = {"auto": "auto", "any": "required", "none": "none"}.get(kind)
    if kind == "tool":
        mapped = {"type": "function", "function": {"name": choice.get("name")}}
    if mapped is None:
        raise other_format_error(f"tool_choice: type {kind!r}")
    out: dict[str, Any] = {"tool_choice": mapped}
    if choice.get("disable_parallel_tool_use") is True:
        out["parallel_tool_calls"] = False
    return out


def messages(system: list[str], raw_messages: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "system", "content": s} for s in system if s]
    for i, m in enumerate(raw_messages):
        role, content = m["role"], m["content"]
        if isinstance(content, str):
            out.append({"role": role, "content": content})
        elif role == "system":  # a system message in mid-conversation: its text blocks
            out.append({"role": "system", "content": "\n".join(b["text"] for b in content if b["type"] == "text")})
        elif role == "assistant":
            out.append(_assistant(content, i))
        else:
            out.extend(_user(content, i))
    return out


def _assistant(blocks: list[dict[str, Any]], i: int) -> dict[str, Any]:
    texts, calls = [], []
    for j, b in enumerate(blocks):
        if b["type"] == "text":
            texts.append(b["text"])
        elif b["type"] == "tool_use":
            calls.append({"id": b.get("id"), "type": "function",
                          "function": {"name": b["name"], "arguments": json.dumps(b.get("input") or {})}})
        elif b["type"] in ("thinking", "redacted_thinking"):
            continue  # the earlier model's own reasoning (see openai.py): not part of this model's context
        else:
            raise other_format_error(f"messages.{i}.content.{j}: {b['type']} blocks")
    message: dict[str, Any] = {"role": "assistant", "content": "\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _user(blocks: list[dict[str, Any]], i: int) -> list[dict[str, Any]]:
    results, parts = [], []
    for j, b in enumerate(blocks):
        if b["type"] == "tool_result":
            results.append({"role": "tool", "tool_call_id": b.get("tool_use_id"),
                            "content": _result_text(b, f"messages.{i}.content.{j}")})
        elif b["type"] == "text":
            parts.append({"type": "text", "text": b["text"]})
        elif b["type"] == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(b, f"messages.{i}.content.{j}")}})
        else:
            raise other_format_error(f"messages.{i}.content.{j}: {b['type']} blocks")
    if parts and all(p["type"] == "text" for p in parts):
        return [*results, {"role": "user", "content": "\n".join(p["text"] for p in parts)}]
    return [*results, {"role": "user", "content": parts}] if parts else results


def _result_text(block: dict[str, Any], where: str) -> str:
    content = block.get("content", "")
    if isinstance(content, list):
        for k, inner in enumerate(content):
            if inner.get("type") != "text":
                raise other_format_error(f"{where}.content.{k}: {inner.get('type')} blocks in tool results")
        content = "\n".join(inner["text"] for inner in content)
    return f"Error: {content}" if block.get("is_error") is True else content


def _image_url(block: dict[str, Any], where: str) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if source.get("type") == "url":
        return str(source.get("url"))
    raise other_format_error(f"{where}: image sources of type {source.get('type')!r}")


# --------------------------------------------------------------------------- OpenAI -> Anthropic

def openai_needs_translation(params: dict[str, Any], msgs: Any) -> bool:
    if any(params.get(k) is not None for k in ("tools", "tool_choice", "parallel_tool_calls")):
        return True
    return any(m.extra.get("tool_calls") or isinstance(m.extra.get("content"), list) for m in msgs)


def anthropic_tools(params: dict[str, Any]) -> dict[str, Any]:
    """``tools`` and ``tool_choice`` of a Messages API body for an OpenAI request's parameters."""
    out: dict[str, Any] = {}
    raw_tools = params.get("tools")
    if raw_tools:
        out["tools"] = []
        for i, tool in enumerate(raw_tools):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(fn, dict):
                raise other_format_error(f"tools[{i}]: {tool.get('type') if isinstance(tool, dict) else tool} tools")
            entry = {"name": fn.get("name"), "input_schema": fn.get("parameters") or {"type": "object"}}
            if fn.get("description"):
                entry["description"] = fn["description"]
            out["tools"].append(entry)
    choice = params.get("tool_choice")
    if choice is not None:
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            out["tool_choice"] = {"type": "tool", "name": choice["function"].get("name")}
        elif choice in ("auto", "required", "none"):
            out["tool_choice"] = {"type": {"auto": "auto", "required": "any", "none": "none"}[choice]}
        else:
            raise other_format_error(f"tool_choice: {choice!r}")
    if params.get("parallel_tool_calls") is False and out.get("tools"):
        out["tool_choice"] = {**out.get("tool_choice", {"type": "auto"}), "disable_parallel_tool_use": True}
    return out


def anthropic_turns(msgs: Any) -> list[dict[str, Any]]:
    """Messages API turns (strict alternation, blocks) for OpenAI messages other than system."""
    turns: list[dict[str, Any]] = []
    for i, m in enumerate(msgs):
        if m.role == "assistant":
            role, blocks = "assistant", _assistant_blocks(m, i)
        elif m.role == "tool" and m.extra.get("tool_call_id"):
            role = "user"
            blocks = [{"type": "tool_result", "tool_use_id": m.extra.get("tool_call_id"), "content": m.content}]
        else:
            role, blocks = "user", _user_blocks(m, i)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _assistant_blocks(m: Any, i: int) -> list[dict[str, Any]]:
    content = m.extra["content"] if "content" in m.extra else m.content
    blocks: list[dict[str, Any]] = []
    text = content if isinstance(content, str) else "\n".join(
        p.get("text", "") for p in content or () if isinstance(p, dict) and p.get("type") == "text")
    if text:
        blocks.append({"type": "text", "text": text})
    for j, call in enumerate(m.extra.get("tool_calls") or ()):
        fn = call.get("function") or {}
        try:
            arguments = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            raise other_format_error(f"messages[{i}].tool_calls[{j}].function.arguments: not JSON") from None
        blocks.append({"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": arguments})
    return blocks


def _user_blocks(m: Any, i: int) -> list[dict[str, Any]]:
    parts = m.extra.get("content")
    if not isinstance(parts, list):
        return [{"type": "text", "text": m.content}] if m.content else []
    blocks = []
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            url = str((part.get("image_url") or {}).get("url", ""))
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        else:
            raise other_format_error(f"messages[{i}].content[{j}]: {kind} parts")
    return blocks
