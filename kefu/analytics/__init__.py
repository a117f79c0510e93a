"""Analytics from the conversation event stream: Rasa's event broker feeds a
consumer that writes compact tables (kefu.analytics.store); figures
(kefu.analytics.figures) read them joined with the shop's own tables; the
console's dashboard and `kefu report` show them."""
