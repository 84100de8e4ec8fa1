"""The Microsoft Graph v1.0 user properties a mapping may name (case-sensitive)."""

from __future__ import annotations

import re

from sync.errors import MappingError

GRAPH_USER_ATTRIBUTES: frozenset[str] = frozenset(
    """
    aboutMe accountEnabled ageGroup birthday businessPhones city companyName consentProvidedForMinor
    country createdDateTime creationType department displayName employeeHireDate employeeId
    employeeLeaveDateTime employeeType externalUserState faxNumber givenName hireDate id
    imAddresses interests isResourceAccount jobTitle legalAgeGroupClassification mail
    mailNickname mobilePhone mySite officeLocation onPremisesDistinguishedName
    onPremisesDomainName onPremisesImmutableId onPremisesSamAccountName
    onPremisesSecurityIdentifier onPremisesSyncEnabled onPremisesUserPrincipalName otherMails
    pastProjects postalCode preferredDataLocation preferredLanguage preferredName proxyAddresses
    responsibilities schools securityIdentifier showInAddressList skills state streetAddress
    surname usageLocation userPrincipalName userType employeeOrgData
    """.split()
)

_EXTENSION = re.compile(r"^extension_[0-9a-f]{32}_[A-Za-z0-9_]+$")
_ONPREM_EXT = re.compile(r"^onPremisesExtensionAttributes\.extensionAttribute([1-9]|1[0-5])$")


def check_attribute(attr: str, *, where: str) -> None:
    """Refuse an attribute Graph does not have, with a hint when only the case is wrong."""
    if attr in GRAPH_USER_ATTRIBUTES or _EXTENSION.match(attr) or _ONPREM_EXT.match(attr):
        return
    lower = {a.lower(): a for a in GRAPH_USER_ATTRIBUTES}
    if attr.lower() in lower:
        raise MappingError(
            f"{where}: '{attr}' is not a Graph attribute; names are case-sensitive, "
            f"did you mean '{lower[attr.lower()]}'?"
        )
    raise MappingError(
        f"{where}: '{attr}' is not a Microsoft Graph user attribute "
        "(see https://learn.microsoft.com/graph/api/resources/user)"
    )


def select_attribute(attr: str) -> str:
    """The name to put in $select for an attribute (a nested one selects its parent)."""
    return attr.split(".", 1)[0]
