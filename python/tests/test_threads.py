"""Models used from several threads at once. Calls release the GIL, so two models run in
parallel; one model's session runs one call at a time, so threads sharing it take turns. Every
result must equal what one thread alone gets."""
import threading

import numpy as np

import glassbox
from conftest import features, images

ROUNDS = 30


def hammer(jobs):
    """Runs each job (a function of the round number) ROUNDS times on a thread of its own,
    all starting together; the exceptions they raised."""
    start = threading.Barrier(len(jobs))
    errors = []

    def worker(job):
        start.wait()
        try:
            for i in range(ROUNDS):
                job(i)
        except Exception as e:  # reported by the test, not lost on the thread
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_two_models_on_two_threads(models):
    inputs = [images(2, salt=k) for k in range(3)]
    mfcc = [features(2, frames=20 + k) for k in range(3)]
    with glassbox.load(models.tiny) as cnn, glassbox.load(models.lid) as lid:
        expected_cnn = [cnn.run({"image": x})["logits"].copy() for x in inputs]
        expected_lid = [lid.run({"mfcc": x})["attention"].copy() for x in mfcc]

        def run_cnn(i):
            assert np.array_equal(cnn.run({"image": inputs[i % 3]})["logits"], expected_cnn[i % 3])

        def run_lid(i):
            assert np.array_equal(lid.run({"mfcc": mfcc[i % 3]})["attention"], expected_lid[i % 3])

        assert hammer([run_cnn, run_lid]) == []


def test_one_model_from_several_threads(models):
    inputs = [images(3, salt=k) for k in range(4)]
    with glassbox.load(models.tiny) as m:
        expected = [m.run({"image": x})["logits"].copy() for x in inputs]
        maps = [m.explain("gradcam", {"image": x}).copy() for x in inputs]

        def job(offset):
            def step(i):
                k = (i + offset) % 4
                if i % 2:
                    assert np.array_equal(m.explain("gradcam", {"image": inputs[k]}), maps[k])
                else:
                    assert np.array_equal(m.run({"image": inputs[k]})["logits"], expected[k])
            return step

        assert hammer([job(0), job(1), job(2), job(3)]) == []


def test_errors_stay_on_their_thread(models):
    """A failing call on one thread while another runs: each sees its own outcome."""
    with glassbox.load(models.tiny) as m:
        good = m.run({"image": images(1)})["logits"].copy()

        def fail(i):
            try:
                m.run({"image": images(1)[:, :2].copy()})
            except glassbox.Error as e:
                assert "size 2 on axis 1" in str(e)
            else:
                raise AssertionError("a bad input ran")

        def succeed(i):
            assert np.array_equal(m.run({"image": images(1)})["logits"], good)

        assert hammer([fail, succeed]) == []
