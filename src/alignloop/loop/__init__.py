"""The whole cycle, one round at a time: curate -> train -> evaluate -> promote (`alignloop loop`).

Modules: config (`LoopConfig`), state (what a round folder has finished), data (the round's new
training rows), evaluation (candidate against deployed), round (one round, resumable), schedule
(rounds started in the background of a served deployment).
"""
