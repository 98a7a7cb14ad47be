Feature: updated, never checked
  Scenario: update openssl
    Given I want to update hosts with class roles::web
    And I want to pre-discover how many hosts to update
    When I update the package openssl-lab to 3.0.13-1
    Then the service nginx should be running
