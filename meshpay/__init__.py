"""meshpay: the FastPay node side (authorities and clients) of meshpay-lab."""
