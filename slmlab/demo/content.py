"""Research and coding sessions of the demo logs, and the texts every session kind shares: pages to
summarize, the summarizer's and the responder's answers, code and patches. A mixin of the generator
(`slmlab.demo.records`).

Usage:
    >>> from slmlab.demo.synth import iter_labelled_logs
    >>> sorted({label for _, label in iter_labelled_logs(200)})[:2]
    ['classify_intent', 'create_ticket']
"""

from __future__ import annotations

import json

from slmlab.demo.fake import CITIES, FIRST, REPOS, TIERS, TOPICS, Fake
from slmlab.demo.sessions import Call, Session, dumps


class ContentSessions:
    """Research and dev sessions, and the summarizer's, responder's and coder's texts."""

    def _research(self, s: Session) -> None:
        r = self.rng
        topic, aspects = r.choice(TOPICS)
        question = r.choice(
            [
                f"What does our {topic} say about {r.choice(aspects)}?",
                f"Give me the key points of the {topic}, especially {r.choice(aspects)} and {r.choice(aspects)}.",
                f"A customer asks about {r.choice(aspects)}. Check the {topic} and draft an answer.",
            ]
        )
        n_pages = r.choice([1, 1, 2, 2, 3])
        plan = {
            "goal": question,
            "steps": [
                {
                    "id": i + 1,
                    "agent": "summarizer",
                    "action": "summarize_page",
                    "input": f"source {i + 1} on {topic}",
                }
                for i in range(n_pages)
            ]
            + [
                {
                    "id": n_pages + 1,
                    "agent": "responder",
                    "action": "respond",
                    "input": "answer with the summaries",
                }
            ],
            "done_when": "the question is answered from the sources",
        }
        s.add(
            Call(
                "plan_task",
                "planner",
                [s.system("planner"), {"role": "user", "content": question}],
                dumps(plan),
            )
        )
        for _ in range(n_pages):
            page = self._page(topic, aspects, s)
            url = f"https://docs.northwind.example/{topic.replace(' ', '-')}/{self.fake.token(6).lower()}"
            self._summarize(s, "summarize_page", f"Source: {url}\n\n{page}")
        self._respond(s, question)

    def _dev(self, s: Session) -> None:
        r, f = self.rng, self.fake
        repo = r.choice(REPOS)
        module = r.choice(["client", "handlers", "settings", "retry", "billing", "mailer", "cache"])
        issue = r.choice(
            [
                f"Requests to the payment gateway time out under load; add retries with exponential backoff in {module}.py.",
                f"The API key is hard-coded in {module}.py; read it from the environment instead.",
                f"{module}.py logs full customer emails; mask them before logging.",
                f"Pagination in {module}.py skips the last page when the total is a multiple of the page size.",
                f"Add a timeout parameter to the HTTP client in {module}.py (default 10 s).",
            ]
        )
        plan = {
            "goal": issue,
            "steps": [
                {"id": 1, "agent": "coder", "action": "write_code_patch", "input": f"{repo}/{module}.py"},
                {"id": 2, "agent": "coder", "action": "write_commit_message", "input": "the patch"},
            ],
            "done_when": "a reviewed patch with a commit message exists",
        }
        task = f"Repository {repo}. Issue #{r.randint(100, 4999)}: {issue}"
        if r.random() < 0.6:
            s.add(
                Call(
                    "plan_task",
                    "planner",
                    [s.system("planner"), {"role": "user", "content": task}],
                    dumps(plan),
                )
            )
        source, diff = self._code(module, issue, f)
        ask = f"{task}\n\nCurrent {module}.py:\n```python\n{source}\n```\nWrite the patch."
        s.add(Call("write_code_patch", "coder", [s.system("coder"), {"role": "user", "content": ask}], diff))
        kind = "fix" if any(w in issue for w in ("skips", "time out", "logs")) else "refactor"
        subject = {
            "time out": f"{kind}({module}): retry gateway calls with exponential backoff",
            "hard-coded": f"{kind}({module}): read API key from the environment",
            "logs full": f"{kind}({module}): mask customer emails in logs",
            "Pagination": f"{kind}({module}): include the last page when total divides evenly",
            "timeout parameter": f"feat({module}): configurable HTTP timeout",
        }
        subj = next(v for k, v in subject.items() if k in issue)
        body = r.choice(
            [
                f"{issue}\n\nThe change is limited to {module}.py and keeps the public interface unchanged.",
                f"Why: {issue[0].lower() + issue[1:]}\n\nTested locally against the staging gateway.",
                f"Closes the issue reported by on-call. {issue}",
            ]
        )
        ask = r.choice(
            [
                f"Write a commit message for this diff:\n\n{diff}",
                f"Commit message please (conventional commits) for the following change in {repo}:\n{diff}",
            ]
        )
        s.add(
            Call(
                "write_commit_message",
                "coder",
                [s.system("coder"), {"role": "user", "content": ask}],
                f"{subj}\n\n{body}",
            )
        )

    # --- pieces --------------------------------------------------------------------------------------------

    def _page(self, topic: str, aspects: list[str], s: Session) -> str:
        r = self.rng
        paras = []
        for _ in range(r.randint(4, 16)):
            aspect = r.choice(aspects)
            sents = [
                r.choice(
                    [
                        f"The {aspect} section of the {topic} was last revised on {self.fake.date(s.day, (-400, -10))}.",
                        f"According to the {topic}, {aspect} changed by {r.randint(2, 40)}% compared with last year.",
                        f"Customers most often ask about {aspect}, which accounts for {r.randint(5, 60)} of every 100 enquiries.",
                        f"For {r.choice(TIERS)} members, {aspect} follows the rules in appendix {r.choice('ABCDE')}.",
                        f"Exceptions to the {aspect} rules need approval from the {r.choice(['operations', 'legal', 'finance'])} team.",
                        f"In {r.choice(CITIES)[0]}, {aspect} is handled by a regional office open {r.randint(6, 9)}am to {r.randint(5, 9)}pm.",
                        f"The {aspect} figures were {r.randint(100, 9999)} in Q{r.randint(1, 4)} and {r.randint(100, 9999)} in the following quarter.",
                        f"Staff should document every {aspect} decision in the case notes within {r.randint(1, 3)} days.",
                        f"Questions about {aspect} can be sent to {self.fake.person()['email']} or raised at the weekly review.",
                    ]
                )
                for _ in range(r.randint(3, 7))
            ]
            paras.append(" ".join(sents))
        title = f"# {topic.title()}\n"
        return title + "\n\n".join(paras)

    def _summarize(self, s: Session, label: str, content: str) -> None:
        r = self.rng
        # The summary keeps some of the input's facts verbatim: sentences of a page, fields of a tool result.
        if label == "summarize_page":
            sentences = [x for x in content.replace("\n", " ").split(". ") if len(x) > 40]
            picked = r.sample(sentences, min(len(sentences), r.randint(3, 6)))
            bullets = [f"- {x.strip().rstrip('.')}." for x in picked]
        else:
            data = json.loads(content.split("returned:\n", 1)[1])
            flat = [f"{k}: {v}" for k, v in data.items() if not isinstance(v, (list, dict))]
            if "rows" in data:
                flat.append(
                    f"{len(data['rows'])} rows, statuses: {', '.join(sorted({x['status'] for x in data['rows']}))}"
                )
            if "results" in data:
                best = min(data["results"], key=lambda x: x["price_usd"])
                flat.append(f"cheapest: {best['flight']} at {best['depart']} for {best['price_usd']} USD")
            if "tracking" in data:
                flat.append(f"last tracking event: {data['tracking']['events'][-1]['status']}")
            bullets = [f"- {x}" for x in flat[:6]]
        summary = "\n".join(bullets)
        ask = r.choice(
            ["Summarize:", "Summarize the following for the next agent.", "Condense this:", "TL;DR please:"]
        )
        msgs = [s.system("summarizer"), {"role": "user", "content": f"{ask}\n\n{content}"}]
        s.add(Call(label, "summarizer", msgs, summary))
        s.notes.append(summary)
        if label == "summarize_page":
            s.facts.append(bullets[0][2:].rstrip("."))

    def _respond(self, s: Session, question: str) -> None:
        r, p = self.rng, s.person
        notes = "\n".join(s.notes) if s.notes else "(no tool results; answer from policy)"
        msgs = [
            s.system("responder"),
            {
                "role": "user",
                "content": f"Customer message:\n{question}\n\nNotes from other agents:\n{notes}",
            },
        ]
        facts = s.facts[-2:]
        opener = r.choice(
            [
                f"Hi {p['first']},",
                f"Hello {p['first']},",
                f"Dear {p['first']},",
                f"Thanks for reaching out, {p['first']}!",
            ]
        )
        middle = (
            " ".join(f"{x.rstrip('.')}." for x in facts)
            if facts
            else "Here is what our policy says about your question."
        )
        close = r.choice(
            [
                "Is there anything else I can help you with?",
                "We'll email you as soon as anything changes.",
                "A specialist will follow up within 24 hours.",
                "Have a great trip!",
            ]
        )
        s.add(Call("respond_to_user", "responder", msgs, f"{opener} {middle} {close}"))

    def _code(self, module: str, issue: str, f: Fake) -> tuple[str, str]:
        r = self.rng
        key = f.api_key()
        lines = [
            "import logging",
            "import requests",
            "",
            f'API_KEY = "{key}"',
            f'BASE_URL = "https://{module}.internal.northwind.example/v{r.randint(1, 3)}"',
            "log = logging.getLogger(__name__)",
            "",
            "",
            f"def fetch_{module}(session_id, page=1, page_size={r.choice([20, 50, 100])}):",
            '    headers = {"Authorization": f"Bearer {API_KEY}"}',
            '    resp = requests.get(f"{BASE_URL}/items", params={"page": page, "size": page_size}, headers=headers)',
            '    log.info("fetched page %s for %s", page, session_id)',
            "    resp.raise_for_status()",
            "    return resp.json()",
        ]
        extra = [
            f"    # TODO({r.choice(FIRST).lower()}): {r.choice(['cache this', 'add metrics', 'handle 429'])}"
            for _ in range(r.randint(0, 3))
        ]
        source = "\n".join(lines[:-1] + extra + lines[-1:])
        if "hard-coded" in issue:
            old, new = [f'-API_KEY = "{key}"'], ['+API_KEY = os.environ["NORTHWIND_API_KEY"]']
        elif "time out" in issue:
            old = ["-    resp.raise_for_status()"]
            new = ["+    for attempt in range(5):", "+        if resp.status_code not in (429, 502, 503, 504):", "+            break",
                   "+        time.sleep(2**attempt)", '+        resp = requests.get(f"{BASE_URL}/items", params={"page": page}, headers=headers)',
                   "+    resp.raise_for_status()"]  # fmt: skip
        elif "timeout" in issue:
            old = [
                '-    resp = requests.get(f"{BASE_URL}/items", params={"page": page, "size": page_size}, headers=headers)'
            ]
            new = [
                '+    resp = requests.get(f"{BASE_URL}/items", params={"page": page, "size": page_size}, headers=headers, timeout=10)'
            ]
        elif "emails" in issue:
            old = ['-    log.info("fetched page %s for %s", page, session_id)']
            new = ['+    log.info("fetched page %s for %s", page, mask(session_id))']
        else:
            old = [f"-def fetch_{module}(session_id, page=1, page_size=50):"]
            new = [f"+def fetch_{module}(session_id, page=1, page_size=50, last_page=None):"]
        diff = (
            f"--- a/{module}.py\n+++ b/{module}.py\n@@ -{r.randint(1, 9)},{len(lines)} +{r.randint(1, 9)},{len(lines)} @@\n"
            + "\n".join(old + new)
        )
        return source, diff
