"""The client's transport against a stubbed server: batches answered in part, refused whole, or
not JSON-RPC at all, each call getting its own answer or error."""

from __future__ import annotations

import json

import pytest

from paraexec.client import Client, RpcClientError
from paraexec.client.client import BATCH


class Answer:
    def __init__(self, status: int, body) -> None:
        self.status_code = status
        self._body = body

    def json(self):
        if isinstance(self._body, Exception):
            raise self._body
        return self._body


def stub(client: Client, answer) -> list:
    """Replace the client's HTTP post by ``answer(request) -> Answer``; returns the requests seen."""
    seen: list = []

    def post(url, content, headers):
        request = json.loads(content)
        seen.append(request)
        return answer(request)

    client._http.post = post  # type: ignore[method-assign]
    return seen


def test_call_many_keeps_every_batch_s_answers_when_one_batch_is_refused():
    client = Client("http://stub")

    def answer(batch):
        if len(batch) < BATCH:  # the second batch: refused whole, as a full mempool answers
            return Answer(429, {"jsonrpc": "2.0", "id": None, "error": {"code": 20, "message": "mempool full"}})
        # the first: answered out of order, one call left unanswered, one with an error
        answers = [{"jsonrpc": "2.0", "id": r["id"], "result": r["params"]["n"]} for r in batch[2:]]
        answers.append({"jsonrpc": "2.0", "id": batch[0]["id"], "error": {"code": -32602, "message": "bad"}})
        return Answer(200, list(reversed(answers)))

    seen = stub(client, answer)
    results = client.call_many([("echo", {"n": n}) for n in range(BATCH + 3)])
    assert [len(batch) for batch in seen] == [BATCH, 3] and len(results) == BATCH + 3
    assert isinstance(results[0], RpcClientError) and results[0].code == -32602
    assert isinstance(results[1], RpcClientError) and "no answer" in results[1].message
    assert results[2:BATCH] == list(range(2, BATCH))
    refused = results[BATCH:]
    assert all(isinstance(r, RpcClientError) and r.code == 20 and r.http_status == 429 for r in refused)


@pytest.mark.parametrize(
    "answer", [Answer(413, None), Answer(502, ValueError("not JSON")), Answer(200, {"jsonrpc": "2.0", "id": 1})]
)
def test_answers_that_are_not_json_rpc_are_client_errors(answer):
    client = Client("http://stub")
    stub(client, lambda request: answer)
    with pytest.raises(RpcClientError) as err:
        client.call("status")
    assert err.value.http_status == answer.status_code
    if not isinstance(answer._body, Exception):  # a batch gets one error per call instead
        results = client.call_many([("status", {}), ("status", {})])
        assert all(isinstance(r, RpcClientError) and r.http_status == answer.status_code for r in results)
