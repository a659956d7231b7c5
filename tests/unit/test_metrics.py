from meshpay.metrics import Metrics


def test_prometheus_text():
    m = Metrics()
    m.inc("meshpay_x_total", "Things.", type="A")
    m.inc("meshpay_x_total", "Things.", type="A")
    m.inc("meshpay_x_total", "Things.", type="B")
    m.observe("meshpay_t_seconds", "Time.", 0.5)
    text = m.render({"meshpay_g": ("A gauge.", 3)})
    assert '# TYPE meshpay_x_total counter' in text
    assert 'meshpay_x_total{type="A"} 2' in text and 'meshpay_x_total{type="B"} 1' in text
    assert "meshpay_t_seconds_sum 0.5" in text and "meshpay_t_seconds_count 1" in text
    assert "# TYPE meshpay_g gauge\nmeshpay_g 3" in text
