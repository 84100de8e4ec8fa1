"""E-mail notifications: a digest mail per sync run for the addresses of ``[notify] email``.

- :mod:`sync.mail.digest`: what a run has to tell (new pending items, errors that need a
  human, the guard) and the mail that says it: plain text and HTML, names escaped, a link that
  opens the Teams channel. Pure.
- :mod:`sync.mail.transports`: one small interface, two transports: Microsoft Graph
  ``sendMail`` and SMTP with STARTTLS.
- :mod:`sync.mail.notifier`: the run listener that decides whether there is news, sends at
  most one mail per run, and keeps the last result for ``status``. A failure is logged and
  shown; it never breaks a sync.
"""
