"""``prodcat serve``: the synchronous HTTP face of prodcat.

One process answers products and search queries inside a request, with the same model
lifecycle as the classify workers:

* :mod:`~workers.serving.api`: request and response contracts (msgspec Structs) and the
  OpenAPI document built from them;
* :mod:`~workers.serving.engine`: one batch of products or queries through the model set
  (override and result cache for products, canary routing, answers as JSON);
* :mod:`~workers.serving.batcher`: concurrent requests' items gathered into one model run;
* :mod:`~workers.serving.routes`: products, queries and taxonomy routes;
* :mod:`~workers.serving.oip`: the Open Inference Protocol (v2 REST) routes;
* :mod:`~workers.serving.guard`: auth, limits, access logs and request metrics (ASGI);
* :mod:`~workers.serving.app`: the Starlette app and the service (start, run, stop).
"""
