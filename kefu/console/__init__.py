"""The agent console (客服工作台): staff accounts, the hand-off queue, live
take-over of conversations, the customer panel and canned replies.

`kefu.console.store` is its data access (over kefu.db), `kefu.console.auth`
its password hashing, `kefu.console.rasa` the calls to Rasa's HTTP API, and
`kefu.web` serves it beside the chat page.
"""
