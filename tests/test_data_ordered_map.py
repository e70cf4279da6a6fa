"""ordered_map: results in input order whatever the completion order, bounded look-ahead,
errors raised at their item's turn, one worker = plain map."""
import threading
import time

import tensorflow as tf

from tftransfer.data.ordered_map import WINDOW_PER_WORKER, ordered_map


class OrderedMapTest(tf.test.TestCase):

    def test_order_kept_when_later_items_finish_first(self):
        def slow_first(i):
            time.sleep(0.02 * (5 - i) if i < 5 else 0)
            return i * i
        self.assertEqual(list(ordered_map(slow_first, range(20), workers=4)),
                         [i * i for i in range(20)])

    def test_look_ahead_is_bounded_on_an_endless_stream(self):
        started = []
        lock = threading.Lock()

        def record(i):
            with lock:
                started.append(i)
            return i

        def endless():
            i = 0
            while True:
                yield i
                i += 1

        results = ordered_map(record, endless(), workers=2)
        self.assertEqual([next(results) for _ in range(3)], [0, 1, 2])
        results.close()
        self.assertLessEqual(len(started), 3 + 2 * WINDOW_PER_WORKER)

    def test_error_is_raised_at_its_item(self):
        def fail_on_three(i):
            if i == 3:
                raise OSError("item 3")
            return i
        got = []
        with self.assertRaisesRegex(OSError, "item 3"):
            for value in ordered_map(fail_on_three, range(10), workers=3):
                got.append(value)
        self.assertEqual(got, [0, 1, 2])

    def test_one_worker_runs_in_the_calling_thread(self):
        caller = threading.get_ident()
        self.assertEqual(list(ordered_map(lambda _: threading.get_ident(), range(3), 1)),
                         [caller] * 3)


if __name__ == "__main__":
    tf.test.main()
