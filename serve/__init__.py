"""padellm_serve: the HTTP service (``padellm serve``) over vLLM's asynchronous engine."""
