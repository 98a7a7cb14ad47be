Feature: a revision deployed, its version never asserted
  Scenario: deploy
    Given I want to update hosts matching "cluster=alfa"
    And I expect to update 4 hosts
    When I deploy revision 4.2.6-3.el5 of mywebapp in batches of 2
    Then the service mywebapp should be running
