"""Agents: one module per algorithm. An agent exposes ``act(obs, eval_mode)``,
``update(batch) -> metrics``, ``state_dict()``/``load_state_dict()``; it never touches an environment
or the file system."""
