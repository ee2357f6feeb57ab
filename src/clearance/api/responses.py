"""The OpenAI Responses API (``POST /v1/responses``): parse a request, render a Response or its events.

A Responses request is translated into the chat completions body it means
(``instructions`` and input items become messages, ``function_call`` items an
assistant turn's ``tool_calls``, ``function_call_output`` items ``role: tool``
messages, flat function tools the nested chat shape) and parsed by
``api.openai.parse_request``, so the pipeline, the guard, policy, audit and both
kinds of backend see an ordinary ``ChatRequest``.  The answer, rendered as a
chat completion by ``api.openai``, becomes the Response's output items; a
stream becomes the Responses event sequence (``responses_stream.py``).

The gateway keeps no state: ``previous_response_id``, ``conversation``, stored
prompts and item references are refused with a 400 naming the field, and
``store`` is accepted but nothing is stored (the answer says ``store: false``);
an earlier answer's item ids, statuses and reasoning items are accepted and not sent on.
Built-in tools (web search, file search, computer use, ...) are refused, as is
every field this module does not know: nothing is dropped silently.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from clearance.api import openai as openai_wire
from clearance.api.errors import bad_request
from clearance.types import ChatRequest, ChatResult, Usage

# Fields refused with the reason a client needs.
_STATELESS = "the gateway keeps no conversation state: send the whole conversation in 'input'"
_REFUSED = {
    "previous_response_id": _STATELESS,
    "conversation": _STATELESS,
    "prompt": "stored prompt templates are not supported: send 'instructions' and 'input'",
    "background": "background responses are not supported (the gateway stores no responses)",
    "context_management": "server-side context management is not supported",
    "max_tool_calls": "built-in tool call limits are not supported (only function tools are)",
    "prompt_cache_key": "prompt cache hints are not supported",
    "prompt_cache_retention": "prompt cache hints are not supported",
    "prompt_cache_options": "prompt cache hints are not supported",
    "safety_identifier": "'safety_identifier' is not supported: send 'user'",
    "service_tier": "service tiers are not supported",
    "moderation": "provider moderation settings are not supported (the gateway screens every request)",
}
_ACCEPTED = {"model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "max_output_tokens",
             "temperature", "top_p", "metadata", "user", "text", "reasoning", "stream", "store", "include",
             "top_logprobs", "truncation", "stream_options"}
# Values of refused fields that ask for nothing (the default), accepted.
_HARMLESS = {"background": (False,), "service_tier": ("auto", "default"), "truncation": ("disabled",)}
_LOGPROBS = "message.output_text.logprobs"
_EFFORTS = {"none", "minimal", "low", "medium", "high", "xhigh"}


@dataclasses.dataclass(frozen=True, slots=True)
class Echo:
    """What a Response repeats of its request (the client's own values, in Responses shapes)."""

    fields: dict[str, Any]
    created_at: int
    logprobs: bool = False


def response_id(request_id: str) -> str:
    return "resp_" + request_id.removeprefix("req_")


def item_id(kind: str, request_id: str, index: int) -> str:
    """The id of output item ``index`` (``msg``, ``fc``) of a response."""
    return f"{kind}_{request_id.removeprefix('req_')}_{index}"


# --------------------------------------------------------------------------- request

def _present(body: dict[str, Any]) -> dict[str, Any]:
    """The fields the client set (a JSON null means not set)."""
    return {k: v for k, v in body.items() if v is not None}


def _only(obj: dict[str, Any], allowed: set[str], where: str) -> None:
    for k, v in obj.items():
        if k not in allowed and v is not None:
            raise bad_request(f"{where}.{k}: not supported by this gateway", f"{where}.{k}")


def _string(obj: dict[str, Any], name: str, where: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise bad_request(f"{where}.{name} must be a string", f"{where}.{name}")
    return value


def _text_parts(content: Any, where: str, *, images: bool) -> str | list[dict[str, Any]]:
    """A message's content as chat-completions content: a string, or text and image_url parts."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"{where} must be a string or a list of content parts", where)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text"):
            # annotations and logprobs are what an earlier answer said about its text; not sent upstream
            _only(part, {"type", "text", "annotations", "logprobs"}, at)
            parts.append({"type": "text", "text": _string(part, "text", at)})
        elif kind == "input_image" and images:
            _only(part, {"type", "image_url", "detail"}, at)
            if part.get("file_id") is not None:
                raise bad_request(f"{at}.file_id: file ids are not supported (send image_url)", f"{at}.file_id")
            image: dict[str, Any] = {"url": _string(part, "image_url", at)}
            if part.get("detail") is not None:
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind is None:
            raise bad_request(f"{at} must be a content part with a 'type'", at)
        else:
            raise bad_request(f"{at}: {kind} content is not supported here by this gateway", at)
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    # id, status and phase identify or label an earlier answer's item; the gateway keeps no items
    _only(item, {"type", "role", "content", "id", "status", "phase"}, where)
    role = item.get("role")
    if role not in ("user", "assistant", "system", "developer"):
        raise bad_request(f"{where}.role must be one of user, assistant, system, developer", f"{where}.role")
    content = _text_parts(item.get("content"), f"{where}.content", images=role == "user")
    return {"role": role, "content": content}


def _function_call(out: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    """A function_call item joins the assistant turn before it (the chat shape of parallel calls)."""
    _only(item, {"type", "call_id", "name", "arguments", "id", "status"}, where)
    call = {"id": _string(item, "call_id", where), "type": "function",
            "function": {"name": _string(item, "name", where), "arguments": _string(item, "arguments", where)}}
    last = out[-1] if out else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
        if last.get("content") == "":
            last["content"] = None
    else:
        out.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_call_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    _only(item, {"type", "call_id", "output", "id", "status"}, where)
    output = item.get("output")
    if isinstance(output, list):
        # a tool message carries text only: images or files in a tool result cannot go upstream
        for j, part in enumerate(output):
            if not (isinstance(part, dict) and part.get("type") in ("input_text", "output_text")):
                kind = part.get("type") if isinstance(part, dict) else part
                raise bad_request(f"{where}.output[{j}]: {kind} content in a function_call_output is not supported",
                                  f"{where}.output")
        output = "\n".join(_string(p, "text", f"{where}.output[{j}]") for j, p in enumerate(output))
    if not isinstance(output, str):
        raise bad_request(f"{where}.output must be a string or a list of input_text parts", f"{where}.output")
    return {"role": "tool", "tool_call_id": _string(item, "call_id", where), "content": output}


def _reasoning(item: dict[str, Any], where: str) -> None:
    """An earlier answer's reasoning, as this gateway returned it: chat completions has no place for it
    (a model's own reasoning is not sent back to it), so it is accepted and not sent on.  Reasoning
    encrypted by a provider means something only to that provider's stored state, and is refused."""
    _only(item, {"type", "id", "summary", "content", "status"}, where)


def _input(value: Any) -> list[dict[str, Any]]:
    """Chat-completions messages for the ``input`` string or items."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise bad_request("'input' is required: a string or a non-empty list of input items", "input")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"{where} must be an object", where)
        kind = item.get("type") or ("message" if "role" in item else None)
        if kind == "message":
            out.append(_message(item, where))
        elif kind == "function_call":
            _function_call(out, item, where)
        elif kind == "function_call_output":
            out.append(_function_call_output(item, where))
        elif kind == "reasoning":
            _reasoning(item, where)
        elif kind == "item_reference":
            raise bad_request(f"{where}: item references are not supported ({_STATELESS})", where)
        else:
            raise bad_request(f"{where}: input items of type {kind!r} are not supported by this gateway "
                              "(message, function_call and function_call_output are)", where)
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise bad_request("'tools' must be a list", "tools")
    out = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise bad_request(f"{where}: {kind!r} tools are not supported by this gateway (built-in tools run at "
                              "the provider, outside its controls); only function tools are", where)
        _only(tool, {"type", "name", "description", "parameters", "strict"}, where)
        fn: dict[str, Any] = {"name": _string(tool, "name", where)}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        _only(choice, {"type", "name"}, "tool_choice")
        return {"type": "function", "function": {"name": _string(choice, "name", "tool_choice")}}
    kind = choice.get("type") if isinstance(choice, dict) else choice
    raise bad_request(f"tool_choice {kind!r} is not supported by this gateway (auto, none, required or a "
                      "function are)", "tool_choice")


def _response_format(text: Any) -> dict[str, Any] | None:
    if not isinstance(text, dict):
        raise bad_request("'text' must be an object", "text")
    _only(text, {"format", "verbosity"}, "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        _only(fmt, {"type", "name", "schema", "description", "strict"}, "text.format")
        schema = {"name": _string(fmt, "name", "text.format"), "schema": fmt.get("schema")}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                schema[key] = fmt[key]
        return {"type": "json_schema", "json_schema": schema}
    raise bad_request(f"text.format of type {kind!r} is not supported (text, json_object, json_schema are)",
                      "text.format")


def _reasoning_effort(reasoning: Any) -> str | None:
    if not isinstance(reasoning, dict):
        raise bad_request("'reasoning' must be an object", "reasoning")
    _only(reasoning, {"effort"}, "reasoning")  # summaries are not produced through chat completions
    effort = reasoning.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise bad_request(f"reasoning.effort must be one of {sorted(_EFFORTS)}", "reasoning.effort")
    return effort


def _check_fields(body: dict[str, Any]) -> None:
    for name, value in body.items():
        if name in _ACCEPTED and name not in _HARMLESS:
            continue
        if name in _HARMLESS and value in _HARMLESS[name]:
            continue
        if name in _REFUSED:
            raise bad_request(f"'{name}' is not supported: {_REFUSED[name]}", name)
        if name == "truncation":
            raise bad_request("'truncation' must be 'disabled': the gateway does not drop input items", name)
        raise bad_request(f"unknown field '{name}': not supported by this gateway's Responses API", name)


def parse_request(body: Any, request_id: str) -> tuple[ChatRequest, Echo]:
    """The neutral request for a Responses API body, and what its Response repeats."""
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    body = _present(body)
    _check_fields(body)
    chat: dict[str, Any] = {"model": body.get("model")}
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise bad_request("'instructions' must be a string", "instructions")
    chat["messages"] = ([{"role": "system", "content": instructions}] if instructions else []) + \
        _input(body.get("input"))
    if "tools" in body and (tools := _tools(body["tools"])):  # an empty list offers nothing (and chat refuses it)
        chat["tools"] = tools
    if "tool_choice" in body:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    if "parallel_tool_calls" in body:
        if not isinstance(body["parallel_tool_calls"], bool):
            raise bad_request("'parallel_tool_calls' must be a boolean", "parallel_tool_calls")
        chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise bad_request("'max_output_tokens' must be a positive integer", "max_output_tokens")
        chat["max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "stream"):
        if name in body:
            chat[name] = body[name]
    if "user" in body:
        if not isinstance(body["user"], str):
            raise bad_request("'user' must be a string", "user")
        chat["user"] = body["user"]
    if "metadata" in body:
        if not isinstance(body["metadata"], dict):
            raise bad_request("'metadata' must be an object", "metadata")
        chat["metadata"] = body["metadata"]
    if "store" in body and not isinstance(body["store"], bool):
        raise bad_request("'store' must be a boolean", "store")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad_request("'stream_options' must be an object", "stream_options")
        _only(options, {"include_obfuscation"}, "stream_options")  # no obfuscation padding is sent
    include = body.get("include", [])
    if not isinstance(include, list):
        raise bad_request("'include' must be a list", "include")
    for extra in include:
        if extra != _LOGPROBS:
            raise bad_request(f"include {extra!r} is not supported by this gateway ({_LOGPROBS!r} is)", "include")
    logprobs = _LOGPROBS in include or "top_logprobs" in body
    if logprobs:
        chat["logprobs"] = True
    if "top_logprobs" in body:
        top = body["top_logprobs"]
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
            raise bad_request("'top_logprobs' must be an integer between 0 and 20", "top_logprobs")
        chat["top_logprobs"] = top
    if "text" in body and (fmt := _response_format(body["text"])) is not None:
        chat["response_format"] = fmt
    if "reasoning" in body and (effort := _reasoning_effort(body["reasoning"])) is not None:
        chat["reasoning_effort"] = effort
    verbosity = body.get("text", {}).get("verbosity")
    if verbosity is not None:
        if verbosity not in ("low", "medium", "high"):
            raise bad_request("text.verbosity must be low, medium or high", "text.verbosity")
        chat["verbosity"] = verbosity
    return openai_wire.parse_request(chat, request_id), Echo(body, int(time.time()), logprobs)


# --------------------------------------------------------------------------- response

def usage(u: Usage) -> dict[str, Any]:
    return {"input_tokens": u.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": u.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": u.total_tokens}


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """The Response status and incomplete_details for a chat finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def response(echo: Echo, request_id: str, model: str, *, status: str, output: list[dict[str, Any]],
             u: Usage | None = None, incomplete: dict[str, str] | None = None,
             error: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Response object, repeating the request's settings as OpenAI does."""
    f = echo.fields
    return {
        "id": response_id(request_id), "object": "response", "created_at": echo.created_at, "status": status,
        "background": False, "error": error, "incomplete_details": incomplete,
        "instructions": f.get("instructions"), "max_output_tokens": f.get("max_output_tokens"),
        "model": model, "output": output, "parallel_tool_calls": f.get("parallel_tool_calls", True),
        "previous_response_id": None, "reasoning": {"effort": (f.get("reasoning") or {}).get("effort"),
                                                    "summary": None},
        "store": False, "temperature": f.get("temperature"), "text": f.get("text") or {"format": {"type": "text"}},
        "tool_choice": f.get("tool_choice", "auto"), "tools": f.get("tools", []), "top_p": f.get("top_p"),
        "top_logprobs": f.get("top_logprobs"), "truncation": "disabled", "usage": usage(u) if u else None,
        "user": f.get("user"), "metadata": f.get("metadata", {}),
    }


def text_part(text: str, logprobs: list | None, annotations: list | None = None) -> dict[str, Any]:
    part: dict[str, Any] = {"type": "output_text", "text": text, "annotations": annotations or []}
    if logprobs is not None:
        part["logprobs"] = logprobs
    return part


def _annotations(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Chat-completions url_citation annotations in the Responses (flat) shape."""
    out = []
    for a in message.get("annotations") or ():
        cite = a.get("url_citation") if isinstance(a, dict) else None
        if isinstance(cite, dict):
            out.append({"type": "url_citation", **cite})
    return out


def render_result(result: ChatResult, req: ChatRequest, echo: Echo) -> dict[str, Any]:
    """The Response for a complete answer (its chat-completions message as output items)."""
    choice = openai_wire.render_result(result, req)["choices"][0]
    message = choice["message"]
    rid = req.request_id
    output: list[dict[str, Any]] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:  # what vLLM, Ollama and others return of a model's reasoning
        output.append({"type": "reasoning", "id": item_id("rs", rid, 0), "status": "completed", "summary": [],
                       "content": [{"type": "reasoning_text", "text": reasoning}]})
    content: list[dict[str, Any]] = []
    if message.get("content"):
        logprobs = (choice.get("logprobs") or {}).get("content") if echo.logprobs else None
        content.append(text_part(message["content"], logprobs or ([] if echo.logprobs else None),
                                 _annotations(message)))
    if message.get("refusal"):
        content.append({"type": "refusal", "refusal": message["refusal"]})
    if content:
        output.append({"type": "message", "id": item_id("msg", rid, len(output)), "status": "completed",
                       "role": "assistant", "content": content})
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        output.append({"type": "function_call", "id": item_id("fc", rid, len(output)), "call_id": call.get("id"),
                       "name": fn.get("name"), "arguments": fn.get("arguments") or "", "status": "completed"})
    status, incomplete = status_of(result.finish_reason)
    return response(echo, rid, req.model, status=status, output=output, u=result.usage, incomplete=incomplete)
