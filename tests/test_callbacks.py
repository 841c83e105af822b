"""The notebook callbacks: the live training plot records what it draws."""


def test_live_training_callback_records_and_draws(monkeypatch):
    import matplotlib
    matplotlib.use("Agg")
    from reptile_edu import callbacks
    cb = callbacks.live_training(4, every=2)
    for i in range(1, 5):
        cb({"event": "step", "iteration": i, "loss": float(10 - i), "meta_step": 1.0})
    cb({"event": "eval", "iteration": 4, "transductive": 50.0, "non-transductive": 40.0})
    assert cb.losses == [9.0, 8.0, 7.0, 6.0] and cb.evals == [(4, 40.0)]
