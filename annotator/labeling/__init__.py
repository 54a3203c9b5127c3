"""Labeling: records -> items -> requests -> answers -> the labels table (``annotator label``).

Input: ``sources`` (records -> items, file and line of every bad record), ``scan`` (the checking
pass before anything is spent), ``guards`` (outputs that would destroy inputs). Requests:
``prompts``, ``fewshot`` (retrieved examples and candidates), ``evidence`` (what a record shows),
``response_models``, ``planning`` (item + vote -> the request sent and its cache key). The LLM
stage: ``session`` (its one interface: settings resolved once, one cache, endpoint, client and
event loop), ``tagging`` (cache, send, validate, re-ask within the evidence), ``pool`` (the
streaming scheduler and the circuit breaker), ``votes``, ``batch`` (the Batch API), ``consensus``
(several models). Output: ``store`` (the labels table), ``consistency`` (the subset check at
commit), ``summary``. ``prepare`` (what a run needs before its first request, the dry-run
estimate), ``quality`` (scoring labels against references) and ``run`` (the only composer).

May import from ``annotator.llm`` and the shared modules only.
"""
