Feature: the check looks at other hosts
  Scenario: update group a, check group b
    Given I want to update hosts with fact hagroup=a
    And I want to pre-discover how many hosts to update
    When I update the package mywebapp to 4.2.6-3.el5
    Given I want to update hosts with fact country=de
    Then the package version for mywebapp should be 4.2.6-3.el5
