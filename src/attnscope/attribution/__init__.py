"""Attribution: methods that run the model again to explain a prediction.

- :mod:`.targets` — what is explained: the predicted next token, a given continuation, or the
  input's own log-likelihood;
- :mod:`.gradients` — gradient norm, gradient × input, integrated gradients;
- :mod:`.occlusion` — the target's log-probability drop when each unit is taken out;
- :mod:`.scorers` — who scores continuations: the in-process model, a callable, an HTTP endpoint;
- :mod:`.probes` — probe inputs run through the model (the induction probe of head metrics).

They use :mod:`attnscope.capture.scoring` for every log-probability. Pure analysis over traces
lives in :mod:`attnscope.analysis`; the catalogue in :mod:`attnscope.methods` dispatches to both.
"""
