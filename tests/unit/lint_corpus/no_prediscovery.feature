Feature: rolled out blind
  Scenario: restart everything
    Given I want to update hosts with class roles::web
    When I restart the service nginx
    Then the service nginx should be running
