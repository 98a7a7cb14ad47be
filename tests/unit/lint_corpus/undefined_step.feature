Feature: a typo
  Scenario: typo'd step
    Given I want to update hosts named web1
    And I want to pre-discover how many hosts to update
    When I restart the servce nginx
    Then the service nginx should be running
