"""Words the recognizers weigh a name by: those that follow a cue without being a name, and those that make a
span an organisation's name rather than a person's."""

from __future__ import annotations

import re

# Capitalised words a cue is often followed by, and words inside found names, that are not names themselves.
NOT_A_NAME = frozenset(re.findall(r"\w+", """the a an it this that there here yes no okay ok well so um uh yeah right
sure please monday tuesday wednesday thursday friday saturday sunday january february march april may june july august
september october november december today tomorrow yesterday morning afternoon evening council bank team
support customer services service department office ltd limited plc inc sorry hello hi thanks thank calling
mr mrs ms miss dr sir madam street road date expiry subject sent re fw fwd"""))
# A span the model calls a person but that holds one of these words is an organisation or a service.
ORGANISATION_WORDS = frozenset(re.findall(r"\w+", """council insurance ltd limited plc inc llc gmbh group trust bank
services service health hospital practice surgery clinic school college university company association partners
publishing analytics solutions agency authority department centre center foundation society union"""))


def is_organisation(said: str) -> bool:
    return not ORGANISATION_WORDS.isdisjoint(re.findall(r"[a-z]+", said.lower()))
